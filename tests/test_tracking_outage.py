"""A tracking server that drops mid-run loses nothing: training finishes, the metrics stay
in the run directory, and ``python -m toolkit.track.sync`` sends them later."""

import os
import subprocess
import sys
import time

import mlflow

from tests.mlflow_server import free_port, start_server, stop_server


def test_metrics_survive_a_server_outage_and_sync_later(tmp_path):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port)
    try:
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "toolkit",
                "+model=mlp",
                "dataset=spirals",
                "dataset.n_per_class=3000",
                "model.activation=relu",
                "trainer.epochs=4",
                "trainer.progress=false",
                "logger.log_model=false",
                f"logger.tracking_uri={uri}",
                "hydra.run.dir=out",
            ],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},  # fail fast in tests
        )
        checkpoint = tmp_path / "out" / "checkpoint_last.npz"
        deadline = time.monotonic() + 180
        while not checkpoint.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        stop_server(server)  # the server goes away after the first epoch
        _, stderr = run.communicate(timeout=600)
    finally:
        if server.poll() is None:
            stop_server(server)
    assert run.returncode == 1, stderr[-2000:]
    assert "send them with: python -m toolkit.track.sync" in stderr
    assert (tmp_path / "out" / "metrics.json").is_file()
    assert (tmp_path / "out" / "unsynced_metrics.jsonl").is_file()

    server = start_server(tmp_path, port)
    try:
        sync = subprocess.run(
            [
                sys.executable,
                "-m",
                "toolkit.track.sync",
                str(tmp_path / "out"),
                "--tracking-uri",
                uri,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert sync.returncode == 0, sync.stderr
        client = mlflow.MlflowClient(uri)
        (found,) = client.search_runs([client.get_experiment_by_name("toolkit").experiment_id])
        steps = sorted(m.step for m in client.get_metric_history(found.info.run_id, "train/loss"))
        assert steps == [1, 2, 3, 4]
        assert "test/acc" in client.get_run(found.info.run_id).data.metrics
        assert not (tmp_path / "out" / "unsynced_metrics.jsonl").exists()
    finally:
        stop_server(server)
