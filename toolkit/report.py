"""``python -m toolkit.report <experiment or parent run id>``: a sweep's report from MLflow.

Reads the sweep (an experiment's latest sweep, or the parent run given by id), writes
``report.md``, ``report.html`` (the figures inline) and the study's figures into ``--out``
(default ``reports/<experiment>/``), logs them to the parent run under ``report/`` unless
``--no-log``, prints the Markdown on stdout and the paths written on stderr. Bad input is
one ``error:`` line and exit code 2.

    python -m toolkit.report activation_pairs
    python -m toolkit.report 3f2a...e9 --tracking-uri http://localhost:5000 --no-log
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import toolkit.track  # noqa: F401  (MLflow settings: telemetry off, see toolkit/track)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
SQLITE_PREFIX = "sqlite:///"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m toolkit.report",
        description="Write a sweep's table (Markdown and HTML) and figures from MLflow.",
    )
    parser.add_argument("target", help="experiment (study) name, or a sweep's parent run id")
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or %(default)s)",
    )
    parser.add_argument("--out", type=Path, help="output folder (default: reports/<experiment>/)")
    parser.add_argument(
        "--metric",
        default="test/acc",
        help="the metric that ranks configurations and is drawn (default: %(default)s)",
    )
    parser.add_argument("--no-log", action="store_true", help="do not log to the parent run")
    return parser.parse_args(argv)


def check_store(tracking_uri: str) -> None:
    """Refuse a SQLite URI whose file does not exist (MLflow would create an empty store)."""
    from toolkit.registry import ConfigError

    if tracking_uri.startswith(SQLITE_PREFIX):
        path = Path(tracking_uri.removeprefix(SQLITE_PREFIX))
        if not path.is_file():
            raise ConfigError(
                f"no MLflow store at {path} ({tracking_uri}); run where the sweep logged, "
                "or pass --tracking-uri / set MLFLOW_TRACKING_URI"
            )


def report(args: argparse.Namespace) -> list[Path]:
    """Write (and log) the report; return the paths written, report first."""
    check_store(args.tracking_uri)
    from toolkit.analysis.report import collect, find_parent_run, log_files, write_files
    from toolkit.track.client import tracking_client

    client = tracking_client(args.tracking_uri)
    study = collect(client, find_parent_run(client, args.target))
    paths = write_files(study, args.out or Path("reports") / study.name, args.metric)
    for path in paths:
        print(f"wrote {path}", file=sys.stderr)
    if not args.no_log:
        log_files(client, study.parent_id, paths)
        print(f"logged to run {study.parent_id} under report/", file=sys.stderr)
    return paths


def is_user_error(err: Exception) -> bool:
    """Bad input or an unusable store, reported in one line: a ValueError (ConfigError),
    an OSError or an MlflowException (imported only when needed)."""
    if isinstance(err, ValueError | OSError):
        return True
    from toolkit.track.client import MlflowException

    return isinstance(err, MlflowException)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        paths = report(args)
    except Exception as err:
        if not is_user_error(err):
            raise
        message = str(err).strip().splitlines()
        print(f"error: {message[0] if message else type(err).__name__}", file=sys.stderr)
        sys.exit(2)
    print(paths[0].read_text(), end="")


if __name__ == "__main__":
    main()
