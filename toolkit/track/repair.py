"""``python -m toolkit.track.repair sqlite:///mlflow.db``: repair a SQLite store that an
interrupted schema creation left half-migrated, keeping every run it holds.

It drops the ``_alembic_tmp_*`` tables a batch migration leaves behind (copies, not the
data) and runs MLflow's own migrations to the current schema (``mlflow db upgrade``).
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import subprocess
import sys

from toolkit.track.store import sqlite_path, store_lock


def repair(tracking_uri: str) -> list[str]:
    """Drop leftover migration tables and upgrade the schema; returns the dropped tables."""
    database = sqlite_path(tracking_uri)
    if database is None or not database.is_file():
        raise FileNotFoundError(f"{tracking_uri} is not an existing sqlite:/// store")
    with store_lock(tracking_uri):
        with contextlib.closing(sqlite3.connect(database)) as db:
            names = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
            dropped = [n for (n,) in names if n.startswith("_alembic_tmp_")]
            for name in dropped:
                db.execute(f'DROP TABLE "{name}"')
            db.commit()
        subprocess.run(
            [sys.executable, "-m", "mlflow", "db", "upgrade", tracking_uri],
            check=True,
            capture_output=True,
        )
    return dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tracking_uri")
    args = parser.parse_args()
    try:
        dropped = repair(args.tracking_uri)
    except (OSError, subprocess.CalledProcessError, sqlite3.DatabaseError) as err:
        detail = getattr(err, "stderr", b"") or b""
        last = detail.decode(errors="replace").strip().splitlines()[-1:] or [str(err)]
        print(f"error: cannot repair {args.tracking_uri}: {last[0]}", file=sys.stderr)
        sys.exit(2)
    print(f"repaired {args.tracking_uri} (dropped: {', '.join(dropped) or 'nothing'})")


if __name__ == "__main__":
    main()
