"""Sweep reports read back from MLflow: tables with mean ± std, 95% CI and Holm-corrected
Welch tests over seeds, the study's figures, the HTML page, artifacts on the parent run,
and the ``python -m toolkit.report`` command.

The sweeps are written by hand into a temporary SQLite store exactly as a Hydra multirun
leaves them (see toolkit.app.sweep and toolkit.app.run): a parent run tagged
``toolkit.sweep=parent`` with its swept keys, one child per job with the flattened config
and group choices as params, per-epoch metrics with step=epoch and final test/* metrics.
"""

from __future__ import annotations

import base64
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pytest
from matplotlib.container import BarContainer
from mlflow.entities import Metric, Param, RunTag

from toolkit.analysis.report import runs as runs_module
from toolkit.analysis.sweep_report import (
    aggregate,
    collect,
    figures,
    find_parent_run,
    holm,
    markdown,
    stat,
    welch_p,
    write_report,
)
from toolkit.registry import ConfigError
from toolkit.track.names import flatten_params

ROOT = Path(__file__).resolve().parents[1]
ACTIVATIONS = ["relu", "sigmoid", "tanh"]


@dataclass
class Job:
    """One child run: its config (flattened into params), group choices and metrics."""

    name: str
    config: dict
    choices: dict[str, str] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    epochs: dict[str, list[float]] = field(default_factory=dict)  # metric -> per epoch 1..E
    failure: str | None = None


def log_sweep(client, root: Path, study: str, swept_keys: list[str], jobs: list[Job]) -> str:
    """Write a finished sweep into the store, its jobs started one second apart in order;
    return its parent run id."""
    artifacts = (root / "artifacts" / study).as_uri()
    experiment_id = client.create_experiment(study, artifact_location=artifacts)
    started = int(time.time() * 1000)
    parent = client.create_run(
        experiment_id,
        start_time=started,
        run_name=f"sweep {','.join(swept_keys)}",
        tags={"toolkit.sweep": "parent", "toolkit.swept_keys": json.dumps(swept_keys)},
    ).info.run_id
    for i, job in enumerate(jobs, start=1):
        log_job(client, experiment_id, parent, job, started + 1000 * i)
    client.set_terminated(parent, "FAILED" if any(job.failure for job in jobs) else "FINISHED")
    return parent


def log_job(client, experiment_id: str, parent: str, job: Job, started: int) -> None:
    """One child run started at ``started`` (ms since the epoch), as toolkit.app.run logs it."""
    run_id = client.create_run(
        experiment_id, start_time=started, run_name=job.name, tags={"mlflow.parentRunId": parent}
    ).info.run_id
    params = flatten_params(job.config) | {f"choice/{g}": o for g, o in job.choices.items()}
    metrics = [Metric(k, v, started, 0) for k, v in job.test.items()]
    for key, values in job.epochs.items():
        metrics += [Metric(key, v, started, epoch) for epoch, v in enumerate(values, start=1)]
    tags = [RunTag("failure_reason", job.failure)] if job.failure else []
    client.log_batch(
        run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()], tags=tags
    )
    client.set_terminated(run_id, "FAILED" if job.failure else "FINISHED")


def pair_accuracy(first: str, second: str) -> float:
    """The mean test accuracy the activation_pairs study gets for a pair: 95.0% .. 97.4%."""
    return 0.95 + 0.01 * ACTIVATIONS.index(first) + 0.002 * ACTIVATIONS.index(second)


def activation_pair_jobs() -> list[Job]:
    """3x3 pairs x seeds 0, 1 at mean -+ 0.1%; seed 1 of (sigmoid, sigmoid) fails; the first
    job failed once before (its attempt in an earlier run of the sweep, then resumed)."""
    first_attempt = Job(
        "model.activation=[relu,relu],seed=0",
        {"seed": 0, "model": {"activation": ["relu", "relu"], "dropout": 0.1}},
        {"model": "mlp", "optim": "adam"},
        failure="KeyboardInterrupt: ",
    )
    jobs = [first_attempt]
    for first in ACTIVATIONS:
        for second in ACTIVATIONS:
            for seed, offset in ((0, -0.001), (1, 0.001)):
                failed = (first, second, seed) == ("sigmoid", "sigmoid", 1)
                acc = pair_accuracy(first, second) + offset
                jobs.append(
                    Job(
                        f"model.activation=[{first},{second}],seed={seed}",
                        {"seed": seed, "model": {"activation": [first, second], "dropout": 0.1}},
                        {"model": "mlp", "optim": "adam"},
                        test={} if failed else {"test/acc": acc, "test/loss": 1 - acc},
                        epochs={"val/acc": [0.5, 0.9]},
                        failure="FloatingPointError: overflow in exp" if failed else None,
                    )
                )
    return jobs


VAL_ACC_BY_OPTIMIZER = {
    "sgd": [[0.90, 0.93, 0.95, 0.96]],  # never reaches 97%
    "sgd_momentum": [[0.92, 0.96, 0.971, 0.975]],  # epoch 3
    "rmsprop": [[0.95, 0.97, 0.975, 0.98]],  # epoch 2 (reaching 97.0% counts)
    "adam": [[0.96, 0.98, 0.98, 0.985], [0.98, 0.98, 0.98, 0.985]],  # mean 97% at epoch 1
}


def optimizer_jobs() -> list[Job]:
    jobs = []
    for optim, seeds in VAL_ACC_BY_OPTIMIZER.items():
        for seed, val_acc in enumerate(seeds):
            jobs.append(
                Job(
                    f"optim={optim}",
                    {"seed": seed, "optim": {"lr": 0.01}},
                    {"optim": optim, "model": "mlp"},
                    test={"test/acc": val_acc[-1], "test/loss": 0.1},
                    epochs={
                        "val/acc": val_acc,
                        "val/loss": [1 - a for a in val_acc],
                        "lr": [0.01, 0.005, 0.0025, 0.00125],
                        "grad_norm/1.dense": [1.0, 0.8, 0.6, 0.5],
                        "grad_norm/3.dense": [0.5, 0.4, 0.3, 0.2],
                    },
                )
            )
    return jobs


POOLING_ACCURACY = {"max": 0.981, "avg": 0.975}


def pooling_jobs() -> list[Job]:
    """One seed per configuration, the readable list param of a newer toolkit."""
    return [
        Job(
            f"{pool}",
            {"seed": 0, "model": {"pool": pool, "channels": "8,16"}},
            {"model": "cnn"},
            test={"test/acc": acc, "test/loss": 0.1},
        )
        for pool, acc in POOLING_ACCURACY.items()
    ]


BATCH_ACCURACY = {64: 0.975, 16: 0.981, 128: 0.970, 32: 0.979}  # logged in this order


def batch_size_jobs() -> list[Job]:
    return [
        Job(
            f"trainer.batch_size={size},seed={seed}",
            {"seed": seed, "trainer": {"batch_size": size}},
            {"model": "mlp"},
            test={"test/acc": acc + (0.002 if seed else -0.002), "test/loss": 0.1},
        )
        for size, acc in BATCH_ACCURACY.items()
        for seed in (0, 1)
    ]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """A SQLite store holding four finished sweeps; their parent run ids by study."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    parents = {
        "activation_pairs": log_sweep(
            client, root, "activation_pairs", ["model.activation", "seed"], activation_pair_jobs()
        ),
        "optimizers": log_sweep(client, root, "optimizers", ["optim"], optimizer_jobs()),
        "batch_sizes": log_sweep(
            client, root, "batch_sizes", ["trainer.batch_size", "seed"], batch_size_jobs()
        ),
        "pooling": log_sweep(client, root, "pooling", ["model.pool"], pooling_jobs()),
    }
    return {"uri": uri, "client": client, "parents": parents, "root": root}


def study(store: dict, name: str):
    client = store["client"]
    return collect(client, find_parent_run(client, name))


def table_row(report: str, first_cell: str) -> list[str]:
    """The cells of the Markdown table row whose first cell is ``first_cell``."""
    for line in report.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in\n{report}")


# --- finding a sweep -------------------------------------------------------------------------


def test_a_sweep_is_found_by_experiment_or_by_parent_run_id(store):
    client, parents = store["client"], store["parents"]
    assert find_parent_run(client, "optimizers").info.run_id == parents["optimizers"]
    assert find_parent_run(client, parents["batch_sizes"]).info.run_id == parents["batch_sizes"]


def test_unknown_names_fail_with_one_line_naming_close_matches(store):
    client = store["client"]
    with pytest.raises(ConfigError, match="did you mean: activation_pairs") as error:
        find_parent_run(client, "activaton_pairs")
    assert "\n" not in str(error.value) and "batch_sizes" in str(error.value)
    child = client.search_runs(
        [client.get_experiment_by_name("optimizers").experiment_id],
        filter_string="tags.`mlflow.parentRunId` != ''",
        max_results=1,
    )[0]
    with pytest.raises(ConfigError, match="not the parent run of a sweep"):
        find_parent_run(client, child.info.run_id)


# --- (a) a grid: activation pairs x seeds ------------------------------------------------


def test_activation_pairs_table_shows_mean_and_sample_std_over_seeds(store):
    report = markdown(study(store, "activation_pairs"))
    header = table_row(report, "model.activation")
    assert header == [
        "model.activation", "test/acc", "95% CI", "vs best (Holm p)", "test/loss", "val/acc"
    ]  # fmt: skip
    # seeds at 95.4% -+ 0.1%: mean 95.40%, sample std sqrt(2 * 0.001**2 / 1) = 0.14%,
    # 95% CI 95.40% -+ t(0.975, 1) * 0.0014142 / sqrt(2) = -+ 12.706 * 0.1%
    row = table_row(report, "relu,tanh")
    assert row[1] == "95.40% ± 0.14% (n=2)"
    assert row[2] == "[94.13%, 96.67%]"
    assert row[5] == "90.00% ± 0.00% (n=2)"  # last epoch
    # one seed failed: its finished twin alone, without a spread, CI or test
    assert table_row(report, "sigmoid,sigmoid")[1:4] == ["96.10%", "–", "–"]
    best = table_row(report, "**tanh,tanh**")
    assert best[1:4] == ["**97.40% ± 0.14% (n=2)**", "**[96.13%, 98.67%]**", "**best**"]
    unfinished = report.split("## Jobs that did not finish")[1]
    assert "`model.activation=[sigmoid,sigmoid],seed=1`" in unfinished
    assert "FloatingPointError: overflow in exp" in unfinished
    assert "KeyboardInterrupt" not in unfinished  # that job finished when resumed
    assert "17 jobs finished, 1 did not" in report
    assert "over 1-2 seeds per configuration (17 runs, 9 configurations)" in report
    assert "(n runs)" not in report


def bars_of(ax):
    """The bar container of a bar chart (its ``errorbar`` is None without error bars)."""
    return next(c for c in ax.containers if isinstance(c, BarContainer))


def two_seed_p(t: float) -> float:
    """Two-sided p of Welch's test between two samples of 2 with equal spread (df = 2,
    where Student's t CDF is 1/2 + t / (2 sqrt(2 + t^2)))."""
    return 1 - t / math.sqrt(2 + t * t)


def test_activation_pairs_mark_the_configurations_distinguishable_from_the_best(store):
    rows = {
        row.config["model.activation"]: row for row in aggregate(study(store, "activation_pairs"))
    }
    # every pair ran seeds at mean -+ 0.1% (sample std 0.1414%): t = difference / 0.1414%
    relu_tanh = rows[("relu", "tanh")].versus_best
    assert relu_tanh.p == pytest.approx(two_seed_p(0.020 / 0.0014142), rel=1e-3)
    # Holm over the 7 testable pairs: relu,tanh has the third smallest p, times 7 - 2
    assert relu_tanh.p_holm == pytest.approx(5 * relu_tanh.p, rel=1e-9) and relu_tanh.distinct
    distinct = {pair for pair, row in rows.items() if row.versus_best and row.versus_best.distinct}
    assert distinct == {
        ("relu", "relu"),
        ("relu", "sigmoid"),
        ("relu", "tanh"),
        ("sigmoid", "relu"),
    }
    assert rows[("tanh", "sigmoid")].versus_best.p == pytest.approx(two_seed_p(1.4142), rel=1e-3)
    assert rows[("sigmoid", "sigmoid")].versus_best is None  # one seed: not tested
    assert rows[("tanh", "tanh")].versus_best is None and rows[("tanh", "tanh")].best
    report = markdown(study(store, "activation_pairs"))
    assert table_row(report, "relu,relu")[3].endswith(" †")
    assert "†" not in table_row(report, "tanh,relu")[3]
    assert "distinguishable (†) from 4 of 7 configurations" in report
    assert "Holm-corrected over the 7 comparisons" in report


def test_statistics_match_hand_computed_values():
    three = stat([1.0, 2.0, 3.0])  # std 1, t(0.975, 2) = 4.302653
    assert (three.mean, three.std, three.n) == (2.0, 1.0, 3)
    assert three.ci == pytest.approx((2 - 4.302653 / math.sqrt(3), 2 + 4.302653 / math.sqrt(3)))
    assert stat([0.5]).ci is None and stat([0.5]).std == 0.0
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert math.isnan(welch_p([1.0], [1.0, 2.0]))
    assert math.isnan(welch_p([1.0, 1.0], [2.0, 2.0]))  # no spread at all: no test
    assert welch_p([1.0, 3.0], [11.0, 13.0]) == pytest.approx(two_seed_p(10 / math.sqrt(2)))


def test_a_one_seed_study_draws_and_writes_no_spread(store):
    data = study(store, "pooling")
    report = markdown(data)
    assert "±" not in report and "95% CI" not in report and "vs best" not in report
    assert table_row(report, "**max**")[1] == "**98.10%**"
    assert "One run per configuration (2 runs)" in report
    ax = figures(data)["bars_test_acc"].axes[0]
    assert bars_of(ax).errorbar is None  # no error bars
    assert all("±" not in text.get_text() for text in ax.texts)
    assert "over seeds" not in ax.get_title()


def test_a_readable_list_param_is_a_value_pair():
    assert runs_module.swept_value({"model.activation": "relu,tanh"}, "model.activation") == (
        "relu",
        "tanh",
    )
    assert runs_module.swept_value({"m": '["relu", "tanh"]'}, "m") == ("relu", "tanh")
    assert runs_module.swept_value({"optim.lr": "0.01"}, "optim.lr") == "0.01"
    assert runs_module.swept_value({"choice/optim": "adam"}, "optim") == "adam"


def test_children_are_read_page_by_page(store, monkeypatch):
    monkeypatch.setattr(runs_module, "PAGE_SIZE", 4)
    data = study(store, "activation_pairs")
    assert len(data.runs) == 19  # 18 jobs and one earlier failed attempt, over 5 pages
    assert len({run.run_id for run in data.runs}) == 19


def test_activation_pairs_rows_are_the_nine_pairs_in_sweep_order(store):
    rows = aggregate(study(store, "activation_pairs"))
    pairs = [row.config["model.activation"] for row in rows]
    assert pairs == [(a, b) for a in ACTIVATIONS for b in ACTIVATIONS]
    assert [row.stats["test/acc"].n for row in rows].count(1) == 1
    assert [row.best for row in rows] == [False] * 8 + [True]
    by_loss = aggregate(study(store, "activation_pairs"), "test/loss")
    assert [row.best for row in by_loss] == [False] * 8 + [True]  # the lowest mean loss


def test_activation_pairs_heatmap_has_first_activation_rows_and_second_columns(store):
    drawn = figures(study(store, "activation_pairs"))
    ax = drawn["heatmap_test_acc"].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ACTIVATIONS
    assert [t.get_text() for t in ax.get_xticklabels()] == ACTIVATIONS
    cells = {tuple(text.get_position()): text.get_text() for text in ax.texts}
    distinct = {("relu", "relu"), ("relu", "sigmoid"), ("relu", "tanh"), ("sigmoid", "relu")}
    for row, first in enumerate(ACTIVATIONS):
        for col, second in enumerate(ACTIVATIONS):
            mean = pair_accuracy(first, second)
            if first == second == "sigmoid":
                mean -= 0.001  # only seed 0 finished
            mark = {True: "\n†", False: ""}[(first, second) in distinct]
            mark = "\nbest" if first == second == "tanh" else mark
            assert cells[(col, row)] == f"{mean:.2%}{mark}"
    assert "bars_test_acc" in drawn
    bars = drawn["bars_test_acc"].axes[0]
    values = [text.get_text() for text in bars.texts]
    assert values[0].startswith("95.00% †\n± ") and values[-1].startswith("97.40% best\n± ")
    assert "†" not in values[6]  # tanh,relu: not distinguishable from the best
    assert "†: differs from the best (Holm p < 0.05)" in bars.get_title()


# --- (b) curves: optimizers ---------------------------------------------------------------


def test_optimizers_overlay_one_mean_curve_per_optimizer(store):
    drawn = figures(study(store, "optimizers"))
    assert set(drawn) == {"val_acc", "val_loss", "lr", "grad_norm_1.dense", "grad_norm_3.dense"}
    ax = drawn["val_acc"].axes[0]
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
    assert list(lines) == list(VAL_ACC_BY_OPTIMIZER)
    assert lines["adam"] == pytest.approx([0.97, 0.98, 0.98, 0.985])  # mean of two seeds
    assert len(drawn["grad_norm_3.dense"].axes[0].get_lines()) == 4


def test_optimizers_table_gives_epochs_to_reach_97_percent(store):
    report = markdown(study(store, "optimizers"))
    expected = {"sgd": "not reached", "sgd_momentum": "3", "rmsprop": "2", "**adam**": "**1**"}
    for optim, epochs in expected.items():
        assert table_row(report, optim)[-1] == epochs


# --- (c) bars: batch sizes ----------------------------------------------------------------


def test_batch_sizes_give_a_bar_per_size_in_numeric_order(store):
    drawn = figures(study(store, "batch_sizes"))
    assert list(drawn) == ["bars_test_acc"]
    ax = drawn["bars_test_acc"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["16", "32", "64", "128"]
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == pytest.approx([BATCH_ACCURACY[size] for size in (16, 32, 64, 128)])
    assert bars_of(ax).errorbar is not None  # two seeds: ± std drawn


def test_write_report_writes_markdown_and_figures_without_logging(store, tmp_path):
    path = write_report(store["client"], "batch_sizes", tmp_path / "out", log_to_parent=False)
    assert path == tmp_path / "out" / "report.md"
    assert "![bars_test_acc](bars_test_acc.png)" in path.read_text()
    assert (tmp_path / "out" / "bars_test_acc.png").stat().st_size > 0
    assert store["client"].list_artifacts(store["parents"]["batch_sizes"], "report") == []


def test_the_html_report_holds_the_table_and_its_figures_inline(store, tmp_path):
    write_report(store["client"], "activation_pairs", tmp_path, log_to_parent=False)
    page = (tmp_path / "report.html").read_text()
    png = base64.b64encode((tmp_path / "heatmap_test_acc.png").read_bytes()).decode()
    assert f'src="data:image/png;base64,{png}"' in page
    assert 'src="bars_test_acc.png"' not in page  # nothing that needs a sibling file
    assert '<tr class="best"><td class="key">tanh,tanh</td><td>97.40% ± 0.14% (n=2)</td>' in page
    assert "<th>vs best (Holm p)</th>" in page and "p=" in page and "†" in page
    assert "Jobs that did not finish" in page and "FloatingPointError" in page
    assert "(n runs)" not in page


# --- (d) the command line -----------------------------------------------------------------


def report_cli(*args: str, cwd: Path, tracking_uri: str | None = None) -> subprocess.Popen:
    """Start ``python -m toolkit.report`` with MLFLOW_TRACKING_URI set to ``tracking_uri``
    (unset when None)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(ROOT)
    if tracking_uri is not None:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    return subprocess.Popen(
        [sys.executable, "-m", "toolkit.report", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass
class Finished:
    """A finished command: where it ran, its exit code and its output."""

    cwd: Path
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def cli(store, tmp_path_factory) -> dict[str, Finished]:
    """The report command run four ways in one fresh folder, all at once (they are
    independent): by experiment, by parent run id, a misspelt experiment, no store."""
    cwd, uri = tmp_path_factory.mktemp("cli"), store["uri"]
    processes = {
        "by_name": report_cli("activation_pairs", "--tracking-uri", uri, "--out", "pairs", cwd=cwd),
        "by_id": report_cli(store["parents"]["optimizers"], cwd=cwd, tracking_uri=uri),
        "misspelt": report_cli("activaton_pairs", "--tracking-uri", uri, cwd=cwd),
        "no_store": report_cli("activation_pairs", cwd=cwd),
    }
    outputs = {name: process.communicate() for name, process in processes.items()}
    return {name: Finished(cwd, processes[name].returncode, *outputs[name]) for name in processes}


def test_cli_reports_a_study_by_experiment_name(store, cli):
    result = cli["by_name"]
    assert result.returncode == 0, result.stderr
    assert "| relu,tanh | 95.40% ± 0.14% (n=2) | [94.13%, 96.67%] | p=" in result.stdout
    assert "wrote pairs/heatmap_test_acc.png" in result.stderr
    assert (result.cwd / "pairs" / "report.md").read_text().startswith(result.stdout)
    client, parent = store["client"], store["parents"]["activation_pairs"]
    logged = {artifact.path for artifact in client.list_artifacts(parent, "report")}
    assert logged == {
        "report/report.md",
        "report/report.html",
        "report/heatmap_test_acc.png",
        "report/bars_test_acc.png",
    }


def test_cli_reports_a_sweep_by_parent_run_id_into_reports_experiment(store, cli):
    result = cli["by_id"]
    assert result.returncode == 0, result.stderr
    assert "| sgd_momentum |" in result.stdout
    assert (result.cwd / "reports" / "optimizers" / "val_acc.png").is_file()
    client, parent = store["client"], store["parents"]["optimizers"]
    logged = {artifact.path for artifact in client.list_artifacts(parent, "report")}
    assert {"report/report.md", "report/report.html", "report/lr.png"} <= logged
    assert "report/grad_norm_1.dense.png" in logged


@pytest.mark.parametrize(
    "case,expected",
    [
        ("misspelt", "error: no experiment 'activaton_pairs' in sqlite:///"),
        ("no_store", "error: no MLflow store at mlflow.db (sqlite:///mlflow.db)"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(cli, case, expected):
    result = cli[case]
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1, result.stderr
    assert not (result.cwd / "mlflow.db").exists()  # no empty store left behind


def test_cli_error_for_a_misspelt_experiment_names_the_close_match(cli):
    assert "did you mean: activation_pairs? experiments: " in cli["misspelt"].stderr


def test_report_modules_import_neither_mlflow_nor_matplotlib():
    code = (
        "import sys, toolkit.report, toolkit.analysis.sweep_report;"
        "print(sorted(m for m in ('mlflow', 'matplotlib', 'scipy') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "[]", result.stderr


def test_a_study_with_a_reference_prints_it_beside_its_table(store):
    """A study preset's ``logger.reference`` (a parent-run tag) becomes a column of the
    report's table, formatted like the row's own numbers, and a note naming its source."""
    data = study(store, "pooling")
    data.reference = {"source": "report 001", "metric": "test/acc", "values": {"max": 0.9}}
    report = markdown(data)
    assert "reference test/acc" in report
    assert table_row(report, "**max**")[-1] == "**90.00%**"  # the best row is bold
    assert table_row(report, "avg")[-1] == "–"
    assert "reference: report 001." in report
