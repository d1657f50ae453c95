"""Sweep reports read back from MLflow: tables with mean ± std over seeds, the study's
figure, artifacts on the parent run, and the ``python -m toolkit.report`` command.

The sweeps are written by hand into a temporary SQLite store exactly as a Hydra multirun
leaves them (see toolkit.app.sweep and toolkit.app.run): a parent run tagged
``toolkit.sweep=parent`` with its swept keys, one child per job with the flattened config
and group choices as params, per-epoch metrics with step=epoch and final test/* metrics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import Metric, Param, RunTag

from toolkit.analysis.sweep_report import (
    aggregate,
    collect,
    figures,
    find_parent_run,
    markdown,
    write_report,
)
from toolkit.registry import ConfigError
from toolkit.track.mlflow_run import flatten_params

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
    """A SQLite store holding three finished sweeps; their parent run ids by study."""
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
    # seeds at 95.4% -+ 0.1%: mean 95.40%, sample std sqrt(2 * 0.001**2 / 1) = 0.14%
    assert table_row(report, "[relu, tanh]")[1] == "95.40% ± 0.14% (n=2)"
    assert table_row(report, "[relu, tanh]")[3] == "90.00% ± 0.00% (n=2)"  # last epoch
    # one seed failed: its finished twin alone, without a spread
    assert table_row(report, "[sigmoid, sigmoid]")[1] == "96.10%"
    assert table_row(report, "**[tanh, tanh]**")[1] == "**97.40% ± 0.14% (n=2)**"  # best
    unfinished = report.split("## Jobs that did not finish")[1]
    assert "`model.activation=[sigmoid,sigmoid],seed=1`" in unfinished
    assert "FloatingPointError: overflow in exp" in unfinished
    assert "KeyboardInterrupt" not in unfinished  # that job finished when resumed
    assert "17 jobs finished, 1 did not" in report


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
    for row, first in enumerate(ACTIVATIONS):
        for col, second in enumerate(ACTIVATIONS):
            mean = pair_accuracy(first, second)
            if first == second == "sigmoid":
                mean -= 0.001  # only seed 0 finished
            assert cells[(col, row)] == f"{mean:.2%}"
    assert "bars_test_acc" in drawn


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


def test_write_report_writes_markdown_and_figures_without_logging(store, tmp_path):
    path = write_report(store["client"], "batch_sizes", tmp_path / "out", log_to_parent=False)
    assert path == tmp_path / "out" / "report.md"
    assert "![bars_test_acc](bars_test_acc.png)" in path.read_text()
    assert (tmp_path / "out" / "bars_test_acc.png").stat().st_size > 0
    assert store["client"].list_artifacts(store["parents"]["batch_sizes"], "report") == []


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
    assert "| [relu, tanh] | 95.40% ± 0.14% (n=2) |" in result.stdout
    assert "wrote pairs/heatmap_test_acc.png" in result.stderr
    assert (result.cwd / "pairs" / "report.md").read_text().startswith(result.stdout)
    client, parent = store["client"], store["parents"]["activation_pairs"]
    logged = {artifact.path for artifact in client.list_artifacts(parent, "report")}
    assert logged == {"report/report.md", "report/heatmap_test_acc.png", "report/bars_test_acc.png"}


def test_cli_reports_a_sweep_by_parent_run_id_into_reports_experiment(store, cli):
    result = cli["by_id"]
    assert result.returncode == 0, result.stderr
    assert "| sgd_momentum |" in result.stdout
    assert (result.cwd / "reports" / "optimizers" / "val_acc.png").is_file()
    client, parent = store["client"], store["parents"]["optimizers"]
    logged = {artifact.path for artifact in client.list_artifacts(parent, "report")}
    assert {"report/report.md", "report/lr.png", "report/grad_norm_1.dense.png"} <= logged


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
        "print(sorted(m for m in ('mlflow', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "[]", result.stderr
