"""Codes from a container image: the profile's ``container`` puts the runtime between
the MPI launcher and the executable, which lives in the image. The runtime here is a
clearly named test double that records its argv and runs the command on the host."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import dask.config
import pytest

from simlab.dispatch.profiles import container_prefix
from simlab.engines.gadget4 import Gadget4Engine
from simlab.errors import ConfigError
from simlab.service.validation import validate_run
from tests.conftest import _needs, data_path
from tests.engines.test_gadget4 import (
    STAND_IN,
    _dispatch_config,
    ngenic32_config,
    stand_in,
)

RUNTIME = Path(__file__).parents[1] / "stand_ins" / "container_runtime_test_double.py"
__all__ = ["stand_in"]  # the fixture, used below by name


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    """The runtime test double, an image file and the log of the runtime's argv."""
    exe = tmp_path / "runtime" / "container_runtime_test_double"
    exe.parent.mkdir(exist_ok=True)
    shutil.copy(RUNTIME, exe)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    image = tmp_path / "gadget4.sif"
    image.write_bytes(b"not a real image")
    log = tmp_path / "runtime.jsonl"
    monkeypatch.setenv("SIMLAB_STAND_IN_RUNTIME_LOG", str(log))
    return exe, image, log


def _profile(exe, image, **extra) -> dict:
    container = {"runtime": "apptainer", "command": str(exe), "image": str(image)}
    return {"kind": "local", "launcher": "", "container": container, **extra}


def test_runtimes_bind_the_run_directory_and_work_in_it():
    apptainer = {"container": {"image": "g4.sif", "options": ["--cleanenv"]}}
    assert container_prefix(apptainer) == (
        "apptainer", "exec", "--bind", "{rundir}", "--pwd", "{rundir}",
        "--cleanenv", "g4.sif",
    )  # fmt: skip
    podman = {"container": {"image": "ghcr.io/g/gadget4:4.0", "runtime": "podman"}}
    assert container_prefix(podman) == (
        "podman", "run", "--rm", "--volume", "{rundir}:{rundir}",
        "--workdir", "{rundir}", "ghcr.io/g/gadget4:4.0",
    )  # fmt: skip
    assert container_prefix({"kind": "local"}) == ()


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({"image": "a.sif", "runtime": "docker"}, "allowed: apptainer, singularity"),
        ({"runtime": "podman"}, "container.image must name an image"),
        ({"image": "a.sif", "options": "--nv"}, "container.options must be a list"),
        ({"image": "a.sif", "gpu": True}, "unknown keys ['gpu']"),
    ],
)
def test_a_bad_container_is_refused_naming_its_key(container, message):
    with pytest.raises(ValueError) as caught:
        container_prefix({"container": container})
    assert message in str(caught.value)


def test_the_executable_is_in_the_image_and_the_launcher_outside(runtime, tmp_path):
    exe, image, _ = runtime
    inside = "/opt/gadget4/Gadget4"  # nothing at this path on the host
    profile = _profile(
        exe, image, launcher="mpirun -np {cores}", executables={"gadget4": inside}
    )
    with dask.config.set({"simlab.clusters.boxed": profile}):
        config = ngenic32_config().model_copy(
            update={"resources": ngenic32_config().resources.model_copy(
                update={"cluster": "boxed", "cores": 4})}
        )  # fmt: skip
        launch = validate_run(config).launch
    assert launch.executable == inside
    assert (
        launch.source
        == "executables.gadget4 of the cluster profile, inside the container image"
    )
    rundir = tmp_path / "run"
    assert Gadget4Engine().command(config, rundir, launch) == [
        "mpirun", "-np", "4",
        str(exe), "exec", "--bind", str(rundir), "--pwd", str(rundir), str(image),
        inside, "inputs/param.txt",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"command": "/nonexistent/apptainer"}, "is not on PATH or not executable"),
        ({"image": "/nonexistent/gadget4.sif"}, "which does not exist"),
    ],
)
def test_a_missing_runtime_or_image_is_a_field_error(
    runtime, tmp_path, change, message
):
    exe, image, _ = runtime
    profile = _profile(exe, image)
    profile["container"].update(change)
    with dask.config.set({"simlab.clusters.boxed": profile}):
        config = ngenic32_config().model_copy(
            update={"resources": ngenic32_config().resources.model_copy(
                update={"cluster": "boxed"})}
        )  # fmt: skip
        with pytest.raises(ConfigError) as caught:
            validate_run(config)
    (error,) = caught.value.errors
    assert error["loc"] == "resources.cluster" and message in error["msg"]


def test_a_gadget4_run_inside_the_container_completes(runtime, stand_in, tmp_path):
    from simlab.dispatch.dispatcher import Dispatcher
    from simlab.service.submission import create

    exe, image, log = runtime
    profile = _profile(exe, image, executables={"gadget4": str(stand_in)})
    with dask.config.set({"simlab.clusters.boxed": profile}):
        run = create(_dispatch_config("boxed"), root=tmp_path / "runs")
        with Dispatcher() as dispatcher:
            assert dispatcher.submit(run.dir).result(timeout=120) == "completed"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    rundir = str(run.path)
    # the compile options were read inside the image too, then the run started there
    assert calls[-1] == [
        "exec", "--bind", rundir, "--pwd", rundir, str(image),
        str(stand_in), "inputs/param.txt",
    ]  # fmt: skip
    assert calls[0][-1] == str(stand_in)
    assert run.snapshots


def test_doctor_reads_the_compile_options_inside_the_image(runtime, stand_in):
    from simlab.service.doctor import checks

    exe, image, log = runtime
    profile = _profile(exe, image, executables={"gadget4": str(stand_in)})
    with dask.config.set({"simlab.clusters.boxed": profile}):
        found = {label: (ok, detail) for _, label, ok, detail in checks("boxed")}
    ok, detail = found["gadget4@boxed"]
    assert ok is True and "PMGRID=64" in detail
    assert "inside the container image" in detail
    assert json.loads(log.read_text().splitlines()[-1])[-2:] == [
        str(image),
        str(stand_in),
    ]


#: What runs a real container here (``.ci/run`` installs them): Podman with runc
#: (crun refuses the sandbox's hybrid cgroups), and a static busybox for the image.
PODMAN_PARTS = ("podman", "runc", "busybox")
PODMAN_INSTALL = "apt-get install podman runc busybox-static"
#: The image's Gadget4: notes the host name it sees, then runs the stand-in (also in
#: the image) with the system Python the container gets from the host's /usr.
IMAGE_GADGET4 = """#!/bin/sh
hostname > "$PWD/container-hostname"
exec /usr/bin/python3 /opt/gadget4/gadget4_test_double.py "$@"
"""


def _podman_missing() -> str | None:
    missing = [part for part in PODMAN_PARTS if shutil.which(part) is None]
    if missing:
        return f"not installed: {', '.join(missing)}"
    if os.geteuid() != 0:
        return "the test's Podman storage and runc need root"
    return None


@pytest.fixture
def podman_image(tmp_path, monkeypatch):
    """A real image (busybox, the stand-in as /opt/gadget4/Gadget4) in a Podman
    store of the test's own (vfs driver, runc, cgroupfs, lowered ulimits)."""
    _needs(_podman_missing(), "Podman", PODMAN_INSTALL)
    rootfs = tmp_path / "rootfs"
    for folder in ("bin", "usr", "tmp", "opt/gadget4"):
        (rootfs / folder).mkdir(parents=True)
    shutil.copy(shutil.which("busybox"), rootfs / "bin" / "busybox")
    (rootfs / "bin" / "sh").symlink_to("busybox")
    (rootfs / "bin" / "hostname").symlink_to("busybox")
    for lib in ("lib", "lib64"):  # Debian's merged /usr, bound from the host
        (rootfs / lib).symlink_to(f"usr/{lib}")
    shutil.copy(STAND_IN, rootfs / "opt" / "gadget4" / "gadget4_test_double.py")
    gadget4 = rootfs / "opt" / "gadget4" / "Gadget4"
    gadget4.write_text(IMAGE_GADGET4)
    gadget4.chmod(0o755)
    store = tmp_path / "podman"
    (store / "containers.conf").parent.mkdir()
    (store / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
        '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n'
    )
    (store / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{store}/graph"\n'
        f'runroot = "{store}/run"\n'
    )
    monkeypatch.setenv("CONTAINERS_CONF", str(store / "containers.conf"))
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(store / "storage.conf"))
    archive = shutil.make_archive(str(tmp_path / "rootfs"), "tar", rootfs)
    image = "localhost/simlab-test-gadget4:1"
    subprocess.run(["podman", "import", "-q", archive, image], check=True, timeout=120)
    return image


@pytest.mark.slow
def test_a_gadget4_run_in_a_real_podman_container_completes(podman_image, tmp_path):
    from simlab.dispatch.dispatcher import Dispatcher
    from simlab.service.submission import create

    fixture = data_path("gadget4-small/ngenic32")
    inside = "/opt/gadget4/Gadget4"  # only in the image
    assert not Path(inside).exists()
    profile = {
        "kind": "local",
        "launcher": "",
        "executables": {"gadget4": inside},
        "container": {
            "runtime": "podman",
            "image": podman_image,
            "options": [
                "--network", "none", "--volume", "/usr:/usr:ro",
                "--volume", f"{fixture}:{fixture}:ro",
                "--env", f"SIMLAB_STAND_IN_FIXTURE={fixture}",
            ],
        },
    }  # fmt: skip
    with dask.config.set({"simlab.clusters.boxed": profile}):
        run = create(_dispatch_config("boxed"), root=tmp_path / "runs")
        with Dispatcher() as dispatcher:
            assert dispatcher.submit(run.dir).result(timeout=180) == "completed"
    # the code ran in the container (its own host name, a container id), wrote
    # the run's outputs through the bound run directory, and nothing is left
    seen = (run.path / "container-hostname").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{12}", seen) and seen != socket.gethostname()
    written = sorted(p.relative_to(run.path / "output") for p in run.snapshots)
    assert written == sorted(
        p.relative_to(fixture / "output")
        for p in (fixture / "output").glob("snapdir_*/snapshot_*.0.hdf5")
    )
    assert len(written) == 4
    left = subprocess.run(
        ["podman", "ps", "--all", "--quiet"], capture_output=True, text=True, timeout=60
    )
    assert left.returncode == 0 and left.stdout == ""
