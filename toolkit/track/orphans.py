"""Runs whose process died without ending them (SIGKILL, the out-of-memory killer, a
crash of the interpreter, a power cut) end KILLED when the next run or sweep of their
experiment starts on the same machine.

A process cannot catch SIGKILL, so its run would stay RUNNING in the MLflow UI forever.
Every run (and sweep parent) therefore carries a :data:`TAG_PROCESS` tag naming the
process that owns it: host name, boot id, pid namespace, pid and the process's start time
(the pid alone may be reused). A starting run looks at the RUNNING runs of its experiment and ends
those whose owner is provably gone: same host, and a different boot, or (in the same pid
namespace) no process with that pid and start time. Runs owned by another host (a
cluster node) or container are left alone: nothing here can see their processes. The
ended run gets ``toolkit.end = killed``, a ``failure_reason`` and, as its end time, its
output folder's last change (its last epoch), not the moment it was found.

Shapes of the tag value: JSON ``{"host": str, "boot": str | null, "pids": str | null,
"pid": int, "start": int | null}`` (``pids`` the pid namespace, ``start`` in clock ticks
since boot, from ``/proc/<pid>/stat``).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import time
from functools import cache
from pathlib import Path

from toolkit.registry import clipped
from toolkit.track.names import (
    LAST_CHECKPOINT,
    TAG_CHECKPOINT,
    TAG_END,
    TAG_FAILURE,
    TAG_OUTPUT_DIR,
    TAG_PROCESS,
)
from toolkit.track.store import search_all_runs

LOGGER = logging.getLogger("toolkit.track")
#: characters of a run's name in a warning line (a single run's name is its command-line
#: overrides, which can run to hundreds; the run id beside it is exact)
NAME_LIMIT = 48


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux
        return None


def _pid_namespace() -> str | None:
    """This process's pid namespace (containers on one kernel share its boot id but not
    their pids)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot), None without one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name may hold spaces


@cache
def process_tag() -> str:
    """The :data:`TAG_PROCESS` value of this process."""
    pid = os.getpid()
    owner = {"host": socket.gethostname(), "boot": _boot_id(), "pids": _pid_namespace(),
             "pid": pid, "start": _start_ticks(pid)}  # fmt: skip
    return json.dumps(owner, sort_keys=True)


def owner_gone(tag: str) -> bool:
    """Whether the process a :data:`TAG_PROCESS` value names has certainly ended: False
    for another host's processes and for values this cannot read."""
    try:
        owner = json.loads(tag)
        host, boot, pid, start = owner["host"], owner["boot"], int(owner["pid"]), owner["start"]
        namespace = owner["pids"]
    except (ValueError, TypeError, KeyError):
        return False
    if host != socket.gethostname():
        return False
    if boot is not None and _boot_id() is not None and boot != _boot_id():
        return True  # the machine restarted since
    if namespace != _pid_namespace():
        return False  # another container's processes
    if start is not None:  # read from this machine's /proc
        return _start_ticks(pid) != start  # no such process, or a new one with its pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False


def _last_activity_ms(run) -> int | None:
    """When the run's output folder last changed (ms since the epoch): its last epoch
    line and checkpoint; None when the folder is not on this machine."""
    folder = run.data.tags.get(TAG_OUTPUT_DIR)
    if not folder or not Path(folder).is_dir():
        return None
    times = [p.stat().st_mtime for p in Path(folder).rglob("*") if p.is_file()]
    return int(max(times) * 1000) if times else None


def _resume_hint(run) -> str:
    """How to resume ``run``: from its folder's newest checkpoint, else from the one it
    uploaded; '' when it has neither."""
    folder = run.data.tags.get(TAG_OUTPUT_DIR)
    if folder and (Path(folder) / LAST_CHECKPOINT).is_file():
        target = shlex.quote(folder)
    elif TAG_CHECKPOINT in run.data.tags:
        target = run.info.run_id
    else:
        return ""
    return f"; resume it with its command and trainer.resume={target}"


def end_orphaned_runs(client, experiment_id: str, keep: str | None = None) -> list:
    """End KILLED every RUNNING run of ``experiment_id`` (except ``keep``) whose owning
    process (its :data:`TAG_PROCESS`) has ended, with a warning line per run; returns
    those runs. Best effort: a store that fails here is left as it was."""
    try:
        running = search_all_runs(client, [experiment_id], "attributes.status = 'RUNNING'")
        orphans = [
            run
            for run in running
            if run.info.run_id != keep and owner_gone(run.data.tags.get(TAG_PROCESS, "null"))
        ]
        for run in orphans:
            owner = json.loads(run.data.tags[TAG_PROCESS])
            reason = (
                f"its process ({owner['pid']} on {owner['host']}) ended without ending the "
                "run: killed (SIGKILL, out of memory) or crashed"
            )
            client.set_tag(run.info.run_id, TAG_END, "killed")
            client.set_tag(run.info.run_id, TAG_FAILURE, reason)
            ended = _last_activity_ms(run) or int(time.time() * 1000)
            client.set_terminated(
                run.info.run_id, status="KILLED", end_time=max(ended, run.info.start_time)
            )
            name = clipped(run.info.run_name or "", NAME_LIMIT)
            LOGGER.warning(
                "warning: run %s (%s) was left RUNNING: %s; marked KILLED%s",
                name, run.info.run_id, reason, _resume_hint(run),
            )  # fmt: skip
        return orphans
    except Exception:  # noqa: BLE001 - tidying must never stop the run that starts
        return []
