"""A real two-node Slurm on this machine: one slurmd per network namespace.

Debian's slurmd is built without multiple-slurmd mode, so each node is a network
namespace (``simlab-n1``, ``simlab-n2``) with a veth ``eth0`` on a bridge (``slbr0``,
10.77.0.1/24) in the root namespace, and its own host name, ``/etc/hosts`` and
``/tmp`` (``unshare --uts --mount``). The controller runs in the root namespace on
the bridge address with its own slurm.conf, ports and state, so it coexists with the
one-node cluster of ``slurm_cluster`` (/etc/slurm/slurm.conf on 127.0.0.1). Munge is
shared. The nodes share every other file system with this machine (the run root
must not be under /tmp). :func:`stop` ends only the daemons :func:`start` started
(by pid) and every process left in the namespaces, then deletes namespaces, veths
and bridge.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests import slurm_cluster

BRIDGE = "slbr0"
CONTROLLER = ("simlabctl", "10.77.0.1")
#: Node name → address; each node is the network namespace ``simlab-NAME``.
NODES = {"n1": "10.77.0.11", "n2": "10.77.0.12"}
CPUS = 2  # per node: all this machine has, so a 4-rank run needs both nodes
PORTS = (6917, 6918)  # controller, node daemons (the one-node cluster has 6817/8)
INSTALL = "apt-get install slurmctld slurmd slurm-client munge iproute2 util-linux"
#: Names the state folder of the cluster that is up, so that a session that was
#: killed before its teardown has its daemons stopped by the next one.
LIVE = Path("/var/tmp/simlab-two-node-slurm.live")

#: The cluster profile that runs on this cluster: the scheduler listens on the
#: bridge, the workers (on the nodes) on their ``eth0``.
PROFILE = {
    "kind": "slurm",
    "queue": "two",
    "cores": 1,
    "processes": 1,
    "memory": "1GB",
    "interface": "eth0",
    "scheduler_options": {
        "interface": BRIDGE,
        "dashboard_address": f"{CONTROLLER[1]}:0",
    },
    "max_jobs": 1,
}


def namespace(node: str) -> str:
    """The network namespace that is node ``node``."""
    return f"simlab-{node}"


def available() -> str | None:
    """None if the two-node cluster can be started here, else why not."""
    if reason := slurm_cluster.available():
        return reason
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"not installed: {tool}"
    probe = "simlab-probe"
    made = _run("ip", "netns", "add", probe)
    _run("ip", "netns", "delete", probe)
    if made.returncode:
        return f"cannot make network namespaces: {made.stderr.strip()}"
    return None


def _run(*argv: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kwargs)


def _must(*argv: str) -> None:
    done = _run(*argv)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


def env(state: Path) -> dict[str, str]:
    """This process's environment pointed at this cluster's slurm.conf."""
    return {**os.environ, "SLURM_CONF": str(state / "slurm.conf")}


def _conf(state: Path) -> str:
    memory = 4000
    nodes = "\n".join(
        f"NodeName={name} NodeAddr={addr} NodeHostname={name} CPUs={CPUS} "
        f"RealMemory={memory} State=UNKNOWN"
        for name, addr in NODES.items()
    )
    return f"""\
ClusterName=simlabtwo
SlurmctldHost={CONTROLLER[0]}({CONTROLLER[1]})
SlurmUser=root
CommunicationParameters=NoCtldInAddrAny
DefMemPerCPU=500
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/%n
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/%n/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/%n/slurmd.log
SlurmctldPort={PORTS[0]}
SlurmdPort={PORTS[1]}
{slurm_cluster.SHARED_CONF}\
{nodes}
PartitionName=two Nodes={",".join(NODES)} Default=YES MaxTime=INFINITE State=UP
"""


def _hosts() -> str:
    lines = ["127.0.0.1 localhost", f"{CONTROLLER[1]} {CONTROLLER[0]}"]
    return "\n".join(lines + [f"{a} {n}" for n, a in NODES.items()]) + "\n"


def _network() -> None:
    """The bridge, and one namespace per node with ``eth0`` on it and lo up."""
    _must("ip", "link", "add", BRIDGE, "type", "bridge")
    _must("ip", "addr", "add", f"{CONTROLLER[1]}/24", "dev", BRIDGE)
    _must("ip", "link", "set", BRIDGE, "up")
    for node, addr in NODES.items():
        ns, veth = namespace(node), f"slv-{node}"
        _must("ip", "netns", "add", ns)
        _must("ip", "link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
        _must("ip", "link", "set", veth, "master", BRIDGE, "up")
        _must("ip", "link", "set", f"{veth}p", "netns", ns)
        inside = ("ip", "netns", "exec", ns, "ip")
        _must(*inside, "link", "set", f"{veth}p", "name", "eth0")
        _must(*inside, "addr", "add", f"{addr}/24", "dev", "eth0")
        _must(*inside, "link", "set", "eth0", "up")
        _must(*inside, "link", "set", "lo", "up")
        _must(*inside, "route", "add", "default", "via", CONTROLLER[1])


def _daemon(state: Path, name: str, argv: list[str]) -> None:
    """Start ``argv`` in a session of its own; its pid goes to ``state/NAME.pid``."""
    log = (state / f"{name}.out").open("w")
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    (state / f"{name}.pid").write_text(f"{proc.pid}\n")


def _host(state: Path, name: str, netns: list[str], command: str) -> None:
    """Run ``command`` as host ``name``: own host name, /etc/hosts and /tmp (PMIx
    keeps per-step folders there), in the network namespace ``netns`` names
    (``ip netns exec`` would remount /sys, where slurmd needs the cgroup fs)."""
    tmp = state / "tmp" / name
    tmp.mkdir(parents=True, exist_ok=True)
    tmp.chmod(0o1777)
    setup = (
        f"mount --bind {state / 'hosts'} /etc/hosts; mount --bind {tmp} /tmp; "
        f"hostname {name}; exec "
    )
    inner = ["unshare", "--uts", "--mount", "sh", "-c", setup + command]
    _daemon(state, name, ["nsenter", *netns, *inner] if netns else inner)


def start(state: Path) -> dict[str, str]:
    """Network, munge, controller and both node daemons; wait until both are idle."""
    if LIVE.exists():  # an interrupted session's cluster
        old = Path(LIVE.read_text().strip())
        stop(old)
        shutil.rmtree(old, ignore_errors=True)
    stop(state)
    LIVE.write_text(f"{state}\n")
    for sub in ("ctld", *NODES):
        (state / sub).mkdir(parents=True, exist_ok=True)
    conf = state / "slurm.conf"
    conf.write_text(_conf(state))
    slurm_cluster.start_munge()
    _network()
    hosts = state / "hosts"
    hosts.write_text(_hosts())
    _host(state, CONTROLLER[0], [], f"slurmctld -D -f {conf}")
    for node in NODES:
        netns = [f"--net=/run/netns/{namespace(node)}"]
        _host(state, node, netns, f"slurmd -D -f {conf} -N {node}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = _run("sinfo", "-h", "-N", "-o", "%N %T", env=env(state)).stdout.split()
        if out.count("idle") == len(NODES):
            return env(state)
        time.sleep(0.5)
    raise RuntimeError(f"two-node Slurm did not come up:\n{diagnostics(state)}")


def _end(pids: list[int], timeout: float = 20.0) -> None:
    """SIGTERM ``pids``, then SIGKILL whichever is left after ``timeout`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
            time.sleep(0.2)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def _namespace_pids(node: str) -> list[int]:
    out = _run("ip", "netns", "pids", namespace(node)).stdout
    return [int(p) for p in out.split()]


def stop(state: Path) -> None:
    """Cancel the jobs, end this cluster's daemons and namespaces' processes, then
    delete namespaces, veths, bridge and hosts files (all idempotent)."""
    if (state / "slurm.conf").exists():
        _run("scancel", "--full", "--partition=two", env=env(state))
    pids = []
    for name in (CONTROLLER[0], *NODES):
        pidfile = state / f"{name}.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text().split()[0])
            pidfile.unlink()
            if b"slurm" in _cmdline(pid):  # not a later process given the same pid
                pids.append(pid)
    for node in NODES:
        pids += _namespace_pids(node)
    _end(pids)
    for node in NODES:
        _run("ip", "netns", "delete", namespace(node))
        _run("ip", "link", "delete", f"slv-{node}")
    _run("ip", "link", "delete", BRIDGE)
    if LIVE.exists() and LIVE.read_text().strip() == str(state):
        LIVE.unlink()


def diagnostics(state: Path) -> str:
    """sinfo, squeue, scontrol show job and the daemon logs' tails."""
    parts = []
    for argv in (("sinfo", "-N"), ("squeue", "-t", "all"), ("scontrol", "show", "job")):
        result = _run(*argv, env=env(state))
        parts.append(f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}")
    logs = [state / "slurmctld.log", *(state / n / "slurmd.log" for n in NODES)]
    for path in [*logs, *state.glob("*.out")]:
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-30:]
            parts.append(f"--- {path.name} ({path.parent.name})\n" + "\n".join(tail))
    return "\n".join(parts)
