"""Codes from a container image: the profile's ``container`` puts the runtime between
the MPI launcher and the executable, which lives in the image. The runtime here is a
clearly named test double that records its argv and runs the command on the host."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import dask.config
import pytest

from simlab.dispatch.profiles import container_prefix
from simlab.engines.gadget4 import Gadget4Engine
from simlab.errors import ConfigError
from simlab.service.validation import validate_run
from tests.engines.test_gadget4 import _dispatch_config, ngenic32_config, stand_in

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
