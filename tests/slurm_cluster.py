"""A real one-node Slurm (Debian's slurmctld, slurmd, munge) for the test session.

Needs root and the Debian packages ``slurmctld slurmd slurm-client munge`` (installed
by ``.ci/run``). :func:`start` writes a slurm.conf into a private folder, starts munge,
the controller and the node daemon, and waits until the node is idle; :func:`stop`
shuts them down. :func:`diagnostics` is what a failing test prints.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "sinfo", "munged")
#: What installs them (as in ``.ci/run``), for the skip message.
INSTALL = "apt-get install slurmctld slurmd slurm-client munge"


#: The cluster profile that runs on this one-node Slurm (``simlab.clusters.NAME``).
PROFILE = {
    "kind": "slurm",
    "queue": "debug",
    "cores": 1,
    "processes": 1,
    "memory": "1GB",
    "interface": "lo",
    "scheduler_options": {"dashboard_address": "127.0.0.1:0"},
    "max_jobs": 2,
}


def available() -> str | None:
    """None if Slurm can be started here, else why not."""
    missing = [p for p in PACKAGES if shutil.which(p) is None]
    if missing:
        return f"not installed: {', '.join(missing)}"
    if os.geteuid() != 0:
        return "starting slurmd needs root"
    return None


def _run(*argv: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kwargs)


def _memory_mb() -> int:
    out = _run("slurmd", "-C").stdout
    return int(int(re.search(r"RealMemory=(\d+)", out)[1]) * 0.8)


#: The slurm.conf lines every test cluster shares: munge, no cgroups and no
#: accounting (neither exists in a container), consumable cores and memory.
SHARED_CONF = """\
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=300
KillWait=5
"""


def _conf(state: Path) -> str:
    cpus, memory = os.cpu_count() or 2, _memory_mb()
    return f"""\
ClusterName=simlabtest
SlurmctldHost=localhost
SlurmUser=slurm
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
DefMemPerCPU=1000
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/d
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
{SHARED_CONF}\
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def state_dir() -> Path:
    """A fresh folder the slurm user can reach (pytest's tmp folders are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="simlab-slurm-", dir="/var/tmp"))
    path.chmod(0o755)
    return path


def start_munge() -> None:
    """Start munged (with a key made if there is none) unless it answers already."""
    munge_run = Path("/run/munge")
    munge_run.mkdir(exist_ok=True)
    munge = pwd.getpwnam("munge")
    os.chown(munge_run, munge.pw_uid, munge.pw_gid)
    if not Path("/etc/munge/munge.key").exists():
        _run("runuser", "-u", "munge", "--", "mungekey", "-c")
    if _run("munge", "-n").returncode != 0:
        _run("runuser", "-u", "munge", "--", "munged", "--force")


def start(state: Path) -> dict[str, str]:
    """Start munge, slurmctld and slurmd with a config under ``state``; return env."""
    if _run("scontrol", "ping").returncode == 0:  # a leftover controller
        stop(state)
    state.mkdir(parents=True, exist_ok=True)
    slurm = pwd.getpwnam("slurm")
    for sub in ("ctld", "d"):
        (state / sub).mkdir(exist_ok=True)
    os.chown(state, slurm.pw_uid, slurm.pw_gid)
    os.chown(state / "ctld", slurm.pw_uid, slurm.pw_gid)
    conf = Path("/etc/slurm/slurm.conf")
    conf.parent.mkdir(exist_ok=True)
    conf.write_text(_conf(state))
    start_munge()
    _run("slurmctld")
    _run("slurmd")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = _run("sinfo", "-h", "-o", "%T").stdout.strip()
        if out in ("idle", "mixed", "allocated"):
            return {"SLURM_CONF": str(conf)}
        time.sleep(0.5)
    raise RuntimeError(f"Slurm did not come up:\n{diagnostics(state)}")


def stop(state: Path) -> None:
    """Shut the daemons down and wait for them to go."""
    _run("scontrol", "shutdown")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if (
            _run("pgrep", "-x", "slurmctld").returncode
            and _run("pgrep", "-x", "slurmd").returncode
        ):
            return
        time.sleep(0.2)
    _run("pkill", "-9", "-x", "slurmd")
    _run("pkill", "-9", "-x", "slurmctld")


def diagnostics(state: Path) -> str:
    """sinfo, squeue, scontrol show job and the daemon logs' tails."""
    parts = []
    for argv in (("sinfo",), ("squeue", "-t", "all"), ("scontrol", "show", "job")):
        result = _run(*argv)
        parts.append(f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}")
    for log in ("slurmctld.log", "slurmd.log"):
        path = state / log
        if path.exists():
            tail = path.read_text().splitlines()[-30:]
            parts.append(f"--- {log}\n" + "\n".join(tail))
    return "\n".join(parts)
