"""The MLflow UI as a person sees a study: a real reduced ``activation_pairs`` sweep, a real
``mlflow server`` on 127.0.0.1 and Debian's headless Chromium (driven by Playwright, no
browser download), asserting what the page shows:

- the study's link (``toolkit.track.ui.experiment_url``) opens on its runs table, not on the
  GenAI "Overview" page;
- every child's name is fully visible at the name column's default width;
- the swept value (readable: ``relu,tanh``) and ``test/acc`` are columns of the table, for
  every child and for the parent (which carries its best child's metrics);
- the parent run's ``report/report.html`` renders in the artifact view with its figures.

Screenshots of these views are written to the test's folder, and to
``$TOOLKIT_UI_SCREENSHOTS`` when set (``TOOLKIT_UI_SCREENSHOTS=docs/ui`` refreshes the
README's). Needs ``apt-get install -y chromium`` (the test is skipped, saying so, without
it) and the real MNIST (TOOLKIT_DATA_DIR).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import requires_mnist
from tests.mlflow_server import running_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1440, "height": 900}
NAME_COLUMN = "attributes.`Run Name`"
SWEPT = "model.activation"
PAIRS = [(a, b) for a in ("relu", "sigmoid", "tanh") for b in ("relu", "sigmoid", "tanh")]
SWEEP = [
    "-m",
    "+experiment=activation_pairs",
    "dataset.subset=500",
    "trainer.epochs=1",
    "logger.log_model=false",
]
ROWS_JS = """
() => {
  // Every rendered row of the runs table (ag-grid splits a row over its pinned and
  // centre containers): its cells' text by column id, and whether the run's name fits.
  const rows = {};
  for (const cell of document.querySelectorAll('[role=row][row-index] [role=gridcell][col-id]')) {
    const index = cell.closest('[role=row]').getAttribute('row-index');
    const row = rows[index] ??= {index: Number(index), cells: {}};
    const column = cell.getAttribute('col-id');
    row.cells[column] = cell.innerText.trim();
    const link = column === 'attributes.`Run Name`' ? cell.querySelector('a') : null;
    if (link) {
      const text = link.querySelector('span') ?? link;
      const cellBox = cell.getBoundingClientRect(), textBox = text.getBoundingClientRect();
      row.name = link.innerText.trim();
      row.nameFits = link.scrollWidth <= link.clientWidth + 1
        && text.scrollWidth <= text.clientWidth + 1 && textBox.right <= cellBox.right + 0.5;
    }
  }
  return Object.values(rows).sort((a, b) => a.index - b.index);
}
"""

# one xdist worker runs the whole module, so its study sweep and browser start once
pytestmark = [pytest.mark.cluster, requires_mnist, pytest.mark.xdist_group("ui-browser")]


def sync_playwright():
    """Playwright's sync API, or a skip naming what is missing."""
    if not CHROMIUM.is_file():
        pytest.skip(f"no {CHROMIUM}: install Debian's browser with apt-get install -y chromium")
    api = pytest.importorskip("playwright.sync_api", reason="playwright (dev dependency) missing")
    return api.sync_playwright


@pytest.fixture(scope="module")
def study(tmp_path_factory, cache_dir) -> dict:
    """A reduced activation_pairs sweep (9 jobs, 500 images, 1 epoch) in a fresh folder."""
    sync_playwright()  # skip before the sweep when no browser
    folder = tmp_path_factory.mktemp("ui-study")
    result = subprocess.run(
        [sys.executable, "-m", "toolkit", *SWEEP],
        cwd=folder,
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    import mlflow

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("activation_pairs")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parent = next(run for run in runs if run.data.tags.get("toolkit.sweep") == "parent")
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId")]
    return {
        "folder": folder,
        "uri": uri,
        "experiment": experiment,
        "parent": parent,
        "children": children,
    }


@pytest.fixture(scope="module")
def page(study, tmp_path_factory):
    """A headless Chromium page (fresh profile) beside a real ``mlflow server`` on the
    study's store; yields (page, server URL, screenshot folder)."""
    playwright = sync_playwright()
    shots = tmp_path_factory.mktemp("ui-shots")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with (
        running_server(study["folder"], backend_store_uri=study["uri"]) as url,
        playwright() as driver,
    ):
        browser = driver.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        try:
            yield browser.new_page(), url, shots
        finally:
            browser.close()
    wanted = os.environ.get("TOOLKIT_UI_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        for shot in shots.glob("*.png"):
            shutil.copy(shot, Path(wanted) / shot.name)


def open_runs_table(page, url: str, study: dict) -> list[dict]:
    """Open the study's link as printed by the sweep; return the table's rows."""
    from toolkit.track.ui import experiment_url

    page.goto(experiment_url(url, study["experiment"].experiment_id))
    page.wait_for_selector(f'[role=gridcell][col-id="{NAME_COLUMN}"] a', timeout=60_000)
    page.wait_for_timeout(1500)  # the rest of the rows and columns
    close_assistant(page)
    return page.evaluate(ROWS_JS)


def close_assistant(page) -> None:
    """Close MLflow 3's "Assistant" side panel (open on a first visit; the browser then
    remembers), so the screenshots show the table at the width people give it."""
    button = page.locator('button[aria-label="Close"]')
    if button.count():
        button.first.click()
        page.wait_for_timeout(300)


def test_the_study_experiment_is_tagged_for_model_training(study):
    from toolkit.track.ui import EXPERIMENT_KIND_TAG, MACHINE_LEARNING_KIND

    assert study["experiment"].tags.get(EXPERIMENT_KIND_TAG) == MACHINE_LEARNING_KIND
    view = study["experiment"].tags.get("mlflow.sharedViewState.toolkit")
    assert view is not None, "the sweep did not store the study's runs-table view"
    assert f"params.`{SWEPT}`" in json.loads(view)["selectedColumns"]


def test_the_study_opens_on_its_runs_table(study, page):
    page, url, shots = page
    rows = open_runs_table(page, url, study)
    experiment_id = study["experiment"].experiment_id
    assert f"/experiments/{experiment_id}/runs" in page.url
    assert "/overview" not in page.url and "workflowType=machine_learning" in page.url
    assert page.get_by_text("No data available for the selected time range").count() == 0
    assert len(rows) == 1 + len(PAIRS), [row.get("name") for row in rows]
    page.screenshot(path=str(shots / "runs_table.png"))
    page.locator('input[name="runs-view-mode"][value="CHART"]').dispatch_event("click")
    page.wait_for_timeout(3000)
    page.screenshot(path=str(shots / "charts.png"))


def test_every_child_name_is_short_and_fully_visible(study, page):
    page, url, _ = page
    rows = {row["name"]: row for row in open_runs_table(page, url, study)}
    names = sorted(run.info.run_name for run in study["children"])
    assert names == sorted(f"{a},{b}" for a, b in PAIRS)
    cut = [name for name in names if not rows[name]["nameFits"]]
    assert not cut, f"names cut at the default column width: {cut}"


def test_the_swept_value_and_test_acc_are_compared_in_the_table(study, page):
    page, url, _ = page
    rows = {row["name"]: row["cells"] for row in open_runs_table(page, url, study)}
    headers = page.evaluate(
        "() => [...document.querySelectorAll('.ag-header-cell[col-id]')]"
        ".map(h => h.getAttribute('col-id'))"
    )
    assert f"params.`{SWEPT}`" in headers and "metrics.`test/acc`" in headers
    for run in study["children"]:
        cells = rows[run.info.run_name]
        assert cells[f"params.`{SWEPT}`"] == run.info.run_name  # relu,tanh both
        shown = float(cells["metrics.`test/acc`"])
        assert shown == pytest.approx(run.data.metrics["test/acc"], abs=1e-3)
    parent = rows[study["parent"].info.run_name]
    best = max(run.data.metrics["test/acc"] for run in study["children"])
    assert float(parent["metrics.`test/acc`"]) == pytest.approx(best, abs=1e-3)


def test_the_report_renders_in_the_parent_runs_artifact_view(study, page):
    from toolkit.track.ui import run_url

    page, url, shots = page
    experiment_id, parent = study["experiment"].experiment_id, study["parent"].info.run_id
    page.goto(run_url(url, experiment_id, parent, "report/report.html"))
    frame_element = page.wait_for_selector("iframe", timeout=60_000)
    frame = frame_element.content_frame()
    frame.wait_for_selector("table", timeout=30_000)
    assert "Study activation_pairs" in frame.inner_text("body")
    images = frame.eval_on_selector_all(
        "img", "imgs => imgs.map(i => [i.src.slice(0, 22), i.naturalWidth])"
    )
    assert images and all(src == "data:image/png;base64," and w > 0 for src, w in images)
    assert "workflowType=machine_learning" in page.url
    assert page.get_by_text("Evaluation runs").count() == 0  # the sidebar stays on training
    close_assistant(page)
    page.screenshot(path=str(shots / "report_html.png"))
