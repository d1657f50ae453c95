"""A real one-node SLURM cluster on localhost for tests and benchmarks.

Debian's ``munge``, ``slurmctld`` and ``slurmd`` packages, started as root with a
``slurm.conf`` written into one folder (``$TOOLKIT_SLURM_DIR``, default
``/tmp/toolkit-slurm``): one node (this machine's CPUs and memory, as ``slurmd -C``
reports them) at 127.0.0.1, one partition ``debug``, ``proctrack/linuxproc``,
``task/none`` and ``select/cons_tres`` (CPUs and memory are consumable). Clients find it
through ``SLURM_CONF`` (:func:`slurm_env`).

Job accounting: submitit asks ``sacct`` whether a job ended and how (a cancelled array task
has no result file). This cluster has no ``slurmdbd`` (it needs MariaDB), so ``sacct`` is
answered from ``jobcomp/filetxt``, the controller's record of every job that ended, plus
``squeue`` for the jobs still queued or running: :data:`SACCT` is put first on ``PATH``
(:func:`slurm_env`). It prints what ``sacct -o JobID,State,NodeList --parsable2 -j IDS``
prints, the only form submitit uses.

Several processes may use the cluster at once (pytest-xdist workers, ``.ci/run``): the
first starts it, every user registers its pid under a lock, and the last user of a cluster
a fixture started stops it (``python -m tests.slurm_cluster start`` starts one that stays
up until ``python -m tests.slurm_cluster stop``).

    python -m tests.slurm_cluster start|stop|status
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

DEFAULT_DIR = Path(os.environ.get("TOOLKIT_SLURM_DIR", "/tmp/toolkit-slurm"))
DAEMONS = ("slurmctld", "slurmd")
PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client")
START_TIMEOUT_S = 90
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
_USES = itertools.count()

SACCT = '''#!/usr/bin/env python3
"""sacct for a cluster without slurmdbd: ended jobs from jobcomp/filetxt, others from squeue.
Prints JobID|State|NodeList lines (--parsable2) for the ids given with -j."""
import os, subprocess, sys

args = sys.argv[1:]
ids = args[args.index("-j") + 1].split(",") if "-j" in args else []
wanted = {i.split("_")[0] for i in ids}
rows = {}
log = os.environ["TOOLKIT_SLURM_JOBCOMP"]
if os.path.exists(log):
    for line in open(log):
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        array_id, task = fields.get("ArrayJobId", "0"), fields.get("ArrayTaskId", "")
        job = fields.get("JobId", "")
        name = f"{array_id}_{task}" if array_id not in ("0", "") and task else job
        rows[name] = (fields.get("JobState", "UNKNOWN"), fields.get("NodeList", ""))
out = subprocess.run(
    ["squeue", "-h", "-r", "-o", "%i|%T|%N"], capture_output=True, text=True
).stdout
for line in out.splitlines():
    job, state, nodes = line.split("|")
    rows[job] = (state, nodes)
print("JobID|State|NodeList")
for job, (state, nodes) in rows.items():
    if not wanted or job.split("_")[0] in wanted or job in ids:
        print(f"{job}|{state}|{nodes}")
'''


def missing_packages() -> str | None:
    """Why no cluster can run here (a sentence), or None when it can."""
    if os.geteuid() != 0:
        return "a SLURM cluster on localhost needs root (slurmd runs jobs as their users)"
    absent = [p for p in ("munged", "slurmctld", "slurmd", "sbatch") if shutil.which(p) is None]
    if absent:
        return (
            f"SLURM is not installed ({', '.join(absent)} missing); "
            f"apt-get install -y {' '.join(PACKAGES)}"
        )
    return None


def slurm_env(folder: Path = DEFAULT_DIR) -> dict[str, str]:
    """Environment variables a client (sbatch, squeue, submitit) needs for this cluster."""
    return {
        "SLURM_CONF": str(folder / "slurm.conf"),
        "PATH": f"{folder / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "TOOLKIT_SLURM_JOBCOMP": str(folder / "jobcomp.log"),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_line() -> str:
    """This machine as a SLURM node at 127.0.0.1 (CPUs, sockets, cores, memory)."""
    described = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True)
    line = described.stdout.splitlines()[0]  # NodeName=vm CPUs=2 ... RealMemory=24105
    return f"{line} NodeAddr=127.0.0.1 State=UNKNOWN"


def write_config(folder: Path) -> Path:
    """``slurm.conf`` for a one-node cluster whose files all live in ``folder``."""
    for sub in ("state", "spool", "bin"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=toolkit",
                f"SlurmctldHost={host}(127.0.0.1)",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"StateSaveLocation={folder / 'state'}",
                f"SlurmdSpoolDir={folder / 'spool'}",
                f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
                f"SlurmdPidFile={folder / 'slurmd.pid'}",
                f"SlurmctldLogFile={folder / 'slurmctld.log'}",
                f"SlurmdLogFile={folder / 'slurmd.log'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core_Memory",
                "DefMemPerCPU=1000",  # MB for a job that asks for no memory
                "MpiDefault=none",
                "SwitchType=switch/none",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "JobCompType=jobcomp/filetxt",
                f"JobCompLoc={folder / 'jobcomp.log'}",
                "ReturnToService=2",
                "SchedulerType=sched/backfill",
                "KillWait=1",  # seconds from SIGTERM to SIGKILL when a job is cancelled
                "MinJobAge=600",  # squeue/scontrol keep ended jobs this long (seconds)
                "InactiveLimit=0",
                "SlurmctldTimeout=30",
                "SlurmdTimeout=30",
                "MaxArraySize=1001",
                node_line(),
                "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    sacct = folder / "bin" / "sacct"
    sacct.write_text(SACCT)
    sacct.chmod(0o755)
    return conf


def _pid_alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
    except (OSError, ValueError):
        return False
    return True


def munge_works() -> bool:
    encoded = subprocess.run(["munge", "-n"], capture_output=True)
    if encoded.returncode != 0:
        return False
    return subprocess.run(["unmunge"], input=encoded.stdout, capture_output=True).returncode == 0


def start_munge(folder: Path) -> None:
    """Start ``munged`` (as the munge user) unless one answers already."""
    if munge_works():
        return
    MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
    shutil.chown(MUNGE_SOCKET.parent, "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True)
    (folder / "munged.started").write_text("")
    deadline = time.monotonic() + 10
    while not munge_works():
        if time.monotonic() > deadline:
            raise RuntimeError("munged did not start (see /var/log/munge/munged.log)")
        time.sleep(0.2)


def is_running(folder: Path = DEFAULT_DIR) -> bool:
    """Both daemons of the cluster in ``folder`` are alive and the node is up."""
    if not all(_pid_alive(folder / f"{d}.pid") for d in DAEMONS):
        return False
    return node_state(folder) in {"idle", "mixed", "allocated", "completing"}


def node_state(folder: Path = DEFAULT_DIR) -> str:
    result = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%T"],
        capture_output=True,
        text=True,
        env={**os.environ, **slurm_env(folder)},
        timeout=20,
    )
    return result.stdout.strip().rstrip("*~#") if result.returncode == 0 else ""


def start(folder: Path = DEFAULT_DIR) -> None:
    """Write the config, start munged, slurmctld and slurmd; return once the node is idle."""
    folder.mkdir(parents=True, exist_ok=True)
    stop_daemons(folder)
    shutil.rmtree(folder / "state", ignore_errors=True)  # a fresh controller: no old jobs
    (folder / "jobcomp.log").unlink(missing_ok=True)
    conf = write_config(folder)
    start_munge(folder)
    env = {**os.environ, **slurm_env(folder)}
    subprocess.run(["slurmctld", "-f", str(conf), "-i"], check=True, env=env)
    subprocess.run(["slurmd", "-f", str(conf)], check=True, env=env)
    deadline = time.monotonic() + START_TIMEOUT_S
    while (state := node_state(folder)) != "idle":
        if time.monotonic() > deadline:
            logs = "\n".join(
                (folder / f"{d}.log").read_text()[-1500:]
                for d in DAEMONS
                if (folder / f"{d}.log").exists()
            )
            raise RuntimeError(f"SLURM node not idle after {START_TIMEOUT_S} s ({state!r})\n{logs}")
        time.sleep(0.5)


def stop_daemons(folder: Path = DEFAULT_DIR) -> None:
    """Stop slurmd and slurmctld (and munged if this module started it)."""
    for daemon in DAEMONS[::-1]:
        pid_file = folder / f"{daemon}.pid"
        if not _pid_alive(pid_file):
            continue
        pid = int(pid_file.read_text().split()[0])
        for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while _pid_alive(pid_file) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _pid_alive(pid_file):
                break
    started = folder / "munged.started"
    if started.exists():
        subprocess.run(["munged", "--stop"], capture_output=True)
        started.unlink()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _live_users(folder: Path) -> list[Path]:
    users = folder / "users"
    users.mkdir(exist_ok=True)
    alive = []
    for path in users.iterdir():
        try:
            os.kill(int(path.name.split("-")[0]), 0)
            alive.append(path)
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
    return alive


@contextlib.contextmanager
def running_cluster(folder: Path = DEFAULT_DIR) -> Iterator[dict[str, str]]:
    """A running cluster while the block runs; yields :func:`slurm_env`. Starts it unless
    one is up in ``folder``; the last user stops a cluster that a user started."""
    me = folder / "users" / f"{os.getpid()}-{next(_USES)}"  # one process may nest uses
    with _locked(folder):
        _live_users(folder)
        if not is_running(folder):
            start(folder)
            (folder / "started_by_user").write_text(str(os.getpid()))
        me.write_text("")
    try:
        yield slurm_env(folder)
    finally:
        with _locked(folder):
            me.unlink(missing_ok=True)
            if not _live_users(folder) and (folder / "started_by_user").exists():
                cancel_all(folder)
                stop_daemons(folder)
                (folder / "started_by_user").unlink()


def cancel_all(folder: Path = DEFAULT_DIR) -> None:
    subprocess.run(
        ["scancel", "--user", "root"], env={**os.environ, **slurm_env(folder)}, capture_output=True
    )


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    reason = missing_packages()
    if reason and command != "status":
        print(f"error: {reason}", file=sys.stderr)
        return 1
    if command == "start":
        started = time.perf_counter()
        with _locked(DEFAULT_DIR):
            if not is_running(DEFAULT_DIR):
                start(DEFAULT_DIR)
                (DEFAULT_DIR / "started_by_user").unlink(missing_ok=True)
        print(
            f"slurm: node idle after {time.perf_counter() - started:.1f} s; "
            f"export SLURM_CONF={DEFAULT_DIR / 'slurm.conf'}"
        )
    elif command == "stop":
        with _locked(DEFAULT_DIR):
            cancel_all(DEFAULT_DIR)
            stop_daemons(DEFAULT_DIR)
    else:
        print(reason or ("running" if is_running(DEFAULT_DIR) else "stopped"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
