"""``python -m toolkit.track.sync <run dir> [--tracking-uri URI]``: send the metrics a run
kept on disk while its tracking server was unreachable (``unsynced_metrics.jsonl``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from toolkit.track.metrics_log import sync_pending
from toolkit.track.store import check_reachable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI")
    args = parser.parse_args()
    try:
        if args.tracking_uri:
            check_reachable(args.tracking_uri)
        sent = sync_pending(args.run_dir, args.tracking_uri)
    except Exception as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"sent {sent} metric records from {args.run_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
