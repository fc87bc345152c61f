"""The Gadget4 engine against real Gadget4 runs (tests/data/gadget4-small)."""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import dask.config
import numpy as np
import pytest

from simlab.config import RunConfig
from simlab.engines import registry
from simlab.engines.base import Launch
from simlab.engines.gadget4 import (
    Gadget4Engine,
    group_catalogue_paths,
    parameters,
    power_spectrum_paths,
    read_parameter_file,
    summarize_log,
)
from simlab.engines.gadget4_build import (
    BuildOptions,
    build_problems,
    config_sh,
    parse_config_block,
    read_config_group,
    read_config_sh,
)
from simlab.errors import ConfigError, EngineError
from simlab.service.validation import validate_run
from tests.conftest import data_path

STAND_IN = Path(__file__).parents[1] / "stand_ins" / "gadget4_test_double.py"
#: Parameters whose values are paths chosen by simlab's run-directory layout.
PATHS = {"InitCondFile", "OutputListFilename"}


def ngenic32_config(**options) -> RunConfig:
    """The configuration of the fixture run ngenic32 (see its README)."""
    fixture = data_path("gadget4-small/ngenic32")
    return RunConfig(
        cosmology={"preset": "planck15"},
        box={"size": 64.0, "particles_per_side": 32},
        ics={"a_start": 0.02, "seed": 181170, "lpt_order": 2},
        outputs={"scale_factors": [0.25, 0.5, 0.75, 1.0]},
        gravity={"softening": 0.08},
        code={
            "engine": "gadget4",
            "options": {
                "ics": "ngenic",
                "fof": True,
                "subfind": True,
                "NumFilesPerSnapshot": 2,
                "config_sh": str(fixture / "Config.sh"),
                **options,
            },
        },
    )


def icfile16_config() -> RunConfig:
    """The configuration of the fixture run icfile16 (ICs from a file)."""
    fixture = data_path("gadget4-small/icfile16")
    return RunConfig(
        cosmology={"preset": "planck15"},
        box={"size": 32.0, "particles_per_side": 16},
        ics={"a_start": 0.1},
        outputs={"scale_factors": [0.15, 0.2]},
        gravity={"softening": 0.08, "mesh": 64},
        code={
            "engine": "gadget4",
            "options": {
                "fof": True,
                "subfind": True,
                "config_sh": str(fixture / "Config.sh"),
            },
        },
    )


def with_code(config: RunConfig, drop: tuple[str, ...] = (), **code) -> RunConfig:
    """``config`` with ``code`` fields replaced and ``drop`` options removed."""
    data = config.model_dump()
    options = {k: v for k, v in data["code"]["options"].items() if k not in drop}
    data["code"] = {**data["code"], **code, "options": options}
    return RunConfig(**data)


def _same_value(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


@pytest.mark.parametrize(
    ("make_config", "run"),
    [(ngenic32_config, "ngenic32"), (icfile16_config, "icfile16")],
)
def test_parameter_file_matches_the_fixture_run(tmp_path, make_config, run):
    fixture = data_path(f"gadget4-small/{run}")
    config = make_config()
    Gadget4Engine().prepare(config, tmp_path, Launch())
    written = read_parameter_file(tmp_path / "inputs" / "param.txt")
    expected = read_parameter_file(fixture / "param.txt")
    assert set(written) == set(expected)
    differing = {
        k: (written[k], expected[k])
        for k in expected
        if k not in PATHS and not _same_value(written[k], expected[k])
    }
    # the fixture's N-GenIC used its own E&H fit (type 1); simlab hands it the
    # run's linear P(k) at a_start as a table (type 2), used as it is
    spectrum = {
        "PowerSpectrumType": ("2", "1"),
        "ReNormalizeInputSpectrum": ("0", "1"),
        "PowerSpectrumFile": ("./inputs/ngenic_spectrum.txt", "powerspec"),
    }
    assert differing == (spectrum if run == "ngenic32" else {})
    outputs = (tmp_path / "inputs" / "outputs.txt").read_text().split()
    assert [float(t) for t in outputs] == [
        float(t) for t in (fixture / "outputs.txt").read_text().split()
    ]
    ics = tmp_path / "inputs" / "ics.hdf5"
    assert ics.exists() == (run == "icfile16")


def test_ic_file_is_what_the_parameter_file_points_at(tmp_path):
    import h5py

    config = icfile16_config()
    Gadget4Engine().prepare(config, tmp_path, Launch())
    params = read_parameter_file(tmp_path / "inputs" / "param.txt")
    ic = tmp_path / (params["InitCondFile"] + ".hdf5")
    with h5py.File(ic, "r") as f:
        header = dict(f["Header"].attrs)
        assert len(header["NumPart_ThisFile"]) == 6
        assert header["NumPart_Total"][1] == 16**3
        assert header["BoxSize"] == float(params["BoxSize"])
        expected_mass = 0.3089 * 27.7536627 * 32.0**3 / 16**3
        assert header["MassTable"][1] == pytest.approx(expected_mass, rel=1e-6)
        assert f["PartType1/ParticleIDs"][:].min() > 0


@pytest.mark.parametrize("run", ["ngenic32", "icfile16"])
def test_config_sh_is_the_fixture_build(run):
    fixture = data_path(f"gadget4-small/{run}")
    config = ngenic32_config() if run == "ngenic32" else icfile16_config()
    written = [line for line in config_sh(config).splitlines() if line[0] != "#"]
    assert sorted(written) == read_config_sh(fixture / "Config.sh").lines()


def test_compile_options_agree_between_stdout_snapshot_and_config_sh():
    run = data_path("gadget4-small/ngenic32")
    from_stdout = parse_config_block((run / "stdout.txt").read_text())
    snapshot = run / "output" / "snapdir_003" / "snapshot_003.0.hdf5"
    from_snapshot = read_config_group(snapshot)
    from_file = read_config_sh(run / "Config.sh")
    assert from_stdout.options == from_file.options == from_snapshot.options
    assert from_stdout.version == "4.0"
    assert from_stdout.commit == "unknown, unknown"
    assert from_stdout.int_value("PMGRID") == 64
    assert from_stdout.softening_classes == 6


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"Omega0": 0.3}, "code.options.Omega0"),
        ({"ErrTolThetaa": 0.5}, "code.options.ErrTolThetaa"),
        ({"ErrTolTheta": "0.5\nBoxSize 1"}, "code.options.ErrTolTheta"),
        ({"NumFilesPerSnapshot": 1.5}, "code.options.NumFilesPerSnapshot"),
        ({"ics": "music"}, "code.options.ics"),
        ({"fof": "yes"}, "code.options.fof"),
    ],
)
def test_unknown_or_bad_options_are_refused(options, field):
    config = {"engine": "gadget4", "executable": "/bin/true", "options": options}
    with pytest.raises(ConfigError) as info:
        validate_run({"code": config})
    assert [e["loc"] for e in info.value.errors] == [field]


def test_outputs_closer_than_the_largest_step_are_refused():
    code = {"engine": "gadget4", "executable": "/bin/true"}
    with pytest.raises(ConfigError) as info:
        validate_run({"outputs": {"redshifts": [0.01, 0.0]}, "code": code})
    (error,) = info.value.errors
    assert error["loc"] == "outputs.redshifts"
    assert "MaxSizeTimestep" in error["msg"]


def test_build_that_cannot_run_is_refused_naming_config_sh_lines(tmp_path):
    plain = data_path("gadget4-small/icfile16/Config.sh")
    config = ngenic32_config(config_sh=str(plain))
    with pytest.raises(EngineError) as info:
        Gadget4Engine().prepare(config, tmp_path / "run", Launch())
    message = str(info.value)
    assert "add NGENIC=64" in message
    assert "add NGENIC_2LPT" in message and "add CREATE_GRID" in message
    assert not (tmp_path / "run").exists()
    no_pm = BuildOptions({"PERIODIC": None, "SELFGRAVITY": None, "NTYPES": "2"})
    problems = build_problems(icfile16_config(), no_pm)
    text = "\n".join(problems)
    assert "add PMGRID=64" in text
    assert "set NTYPES=6" in text
    assert "add FOF" in text and "add SUBFIND" in text
    assert "add POWERSPEC_ON_OUTPUT" in text


def test_ngenic_build_refuses_simlab_ics():
    ngenic = read_config_sh(data_path("gadget4-small/ngenic32/Config.sh"))
    problems = build_problems(icfile16_config(), ngenic)
    assert any("remove NGENIC" in p for p in problems)


def test_failed_prepare_leaves_no_run_directory(tmp_path):
    from simlab.service.submission import create

    plain = data_path("gadget4-small/icfile16/Config.sh")
    config = with_code(ngenic32_config(config_sh=str(plain)), executable="/bin/true")
    with pytest.raises(EngineError, match="add NGENIC"):
        create(config, root=tmp_path)
    assert [p for p in tmp_path.iterdir() if not p.name.startswith(".simlab")] == []


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """The test-double executable, runnable, replaying the ngenic32 fixture."""
    run = data_path("gadget4-small/ngenic32")
    exe = tmp_path / "bin" / "gadget4_test_double"
    exe.parent.mkdir()
    shutil.copy(STAND_IN, exe)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("SIMLAB_STAND_IN_FIXTURE", str(run))
    return exe


def test_health_reports_executable_version_and_options(stand_in):
    health = registry.get("gadget4").health(Launch(executable=str(stand_in)))
    assert health.ok
    assert health.version == "4.0 (commit unknown, unknown)"
    assert str(stand_in) in health.message
    assert "PMGRID=64" in health.message and "NGENIC_2LPT" in health.message


def test_health_without_executable_says_where_to_set_it():
    health = Gadget4Engine().health(Launch())
    assert not health.ok
    assert "SIMLAB_GADGET4" in health.message


def _launched(config: RunConfig) -> tuple[str, str]:
    launch = validate_run(config).launch
    return launch.executable, launch.source


def test_executable_rule_most_specific_first(stand_in, monkeypatch, tmp_path):
    other = tmp_path / "bin" / "other"
    shutil.copy(stand_in, other)
    monkeypatch.setenv("PATH", f"{stand_in.parent}{os.pathsep}/usr/bin:/bin")
    monkeypatch.delenv("SIMLAB_GADGET4", raising=False)
    shutil.copy(stand_in, stand_in.parent / "Gadget4")
    config = RunConfig(code={"engine": "gadget4"})
    assert _launched(config) == (str(stand_in.parent / "Gadget4"), "PATH")
    monkeypatch.setenv("SIMLAB_GADGET4", str(other))
    assert _launched(config) == (str(other), "SIMLAB_GADGET4")
    profile = {"kind": "local", "executables": {"gadget4": str(stand_in)}}
    with dask.config.set({"simlab.clusters.g4": profile}):
        config = RunConfig(code={"engine": "gadget4"}, resources={"cluster": "g4"})
        assert _launched(config) == (
            str(stand_in),
            "executables.gadget4 of the cluster profile",
        )
        config = RunConfig(
            code={"engine": "gadget4", "executable": str(other)},
            resources={"cluster": "g4"},
        )
        assert _launched(config) == (str(other), "code.executable")
    monkeypatch.setenv("SIMLAB_GADGET4", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"SIMLAB_GADGET4 names .*missing"):
        validate_run(RunConfig(code={"engine": "gadget4"}))


def test_build_probed_from_the_executable(stand_in, tmp_path):
    config = with_code(ngenic32_config(), ("config_sh",), executable=str(stand_in))
    build = Gadget4Engine().build(config, Launch(executable=str(stand_in)))
    assert build.source == str(stand_in)
    fixture = data_path("gadget4-small/ngenic32/Config.sh")
    assert build.options == read_config_sh(fixture).options


@pytest.mark.parametrize(
    ("profile", "launcher"),
    [
        ({"kind": "local"}, ["mpirun", "-np", "4"]),
        ({"kind": "slurm"}, ["srun", "--ntasks=4"]),
        ({"kind": "local", "launcher": ""}, []),
    ],
)
def test_command_uses_the_profile_launcher(stand_in, tmp_path, profile, launcher):
    with dask.config.set({"simlab.clusters.g4": profile}):
        config = RunConfig(
            code={"engine": "gadget4", "executable": str(stand_in)},
            resources={"cluster": "g4", "cores": 4},
        )
        argv = Gadget4Engine().command(config, tmp_path, validate_run(config).launch)
    assert argv == [*launcher, str(stand_in), "inputs/param.txt"]


def test_progress_over_the_full_fixture_log():
    text = data_path("gadget4-small/ngenic32/stdout.txt").read_text()
    engine = Gadget4Engine()
    progress = [p for p in map(engine.parse_progress, text.splitlines()) if p]
    assert len(progress) == 502
    assert [p.step for p in progress] == list(range(502))
    a = np.array([p.a for p in progress])
    assert a[0] == 0.02 and a[-1] == 1.0
    assert np.all(np.diff(a) > 0)
    fractions = np.array([p.fraction(0.02, 1.0) for p in progress])
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert np.all(np.diff(fractions) > 0)
    summary = summarize_log(text)
    assert (summary.finished, summary.stopped_by, summary.error) == (True, None, None)
    assert summary.a_last == a[-1]


def test_stop_and_restart_logs_are_recognised():
    folder = data_path("gadget4-small/restart")
    stop = summarize_log((folder / "stdout_stop.txt").read_text())
    assert (stop.a_last, stop.stopped_by) == (0.0456464, "stop_file")
    restart = summarize_log((folder / "stdout_restart.txt").read_text())
    assert (restart.a_last, restart.stopped_by) == (0.164771, "time_limit")
    # Gadget4 says "bye!" after a stop too: finished alone is not completed
    assert stop.finished and restart.finished
    assert stop.error is None and restart.error is None


def _run_dir(tmp_path: Path, log_text: str, restart_files: bool = False) -> Path:
    rundir = tmp_path / "run"
    (rundir / "output").mkdir(parents=True)
    (rundir / "log").write_text("simlab: running Gadget4 inputs/param.txt\n" + log_text)
    if restart_files:
        (rundir / "output" / "restartfiles").mkdir()
        (rundir / "output" / "restartfiles" / "restart.0").write_bytes(b"x")
    return rundir


def test_outcome_is_read_from_the_log_not_the_exit_status(tmp_path):
    folder = data_path("gadget4-small")
    config = ngenic32_config()
    engine = Gadget4Engine()
    full = (folder / "ngenic32" / "stdout.txt").read_text()
    stop = (folder / "restart" / "stdout_stop.txt").read_text()
    limit = (folder / "restart" / "stdout_restart.txt").read_text()
    cases = [
        (full, True, 0, "completed"),
        (stop, True, 0, "checkpointed"),
        (limit, True, 0, "checkpointed"),
        (stop, False, 0, "failed"),  # stopped but no restart files to go on from
        (full, True, 1, "failed"),
        (
            "Error. I miss a value for tag 'SofteningComovingClass1' in parameter "
            "file 'param.txt'.\n\nWe stop because of an error in the parameterfile.\n",
            False,
            0,
            "failed",
        ),
        (full.split("Sync-Point 400,")[0] + "bye!\n", False, 0, "failed"),
    ]
    for i, (text, restart_files, code, expected) in enumerate(cases):
        rundir = _run_dir(tmp_path / str(i), text, restart_files)
        assert engine.outcome(config, rundir, code).state == expected, i


def test_restart_stop_and_outputs_discovery(tmp_path, stand_in):
    folder = data_path("gadget4-small/ngenic32")
    config = with_code(ngenic32_config(), executable=str(stand_in))
    engine = Gadget4Engine()
    launch = Launch(executable=str(stand_in))
    rundir = tmp_path / "run"
    (rundir / "output").mkdir(parents=True)
    assert engine.restart(config, rundir, launch) is None
    assert engine.outputs(rundir) == []
    shutil.copytree(folder / "output", rundir / "output", dirs_exist_ok=True)
    snapshots = engine.outputs(rundir)
    assert [p.relative_to(rundir / "output").as_posix() for p in snapshots] == [
        f"snapdir_00{i}/snapshot_00{i}.0.hdf5" for i in range(4)
    ]
    assert len(group_catalogue_paths(rundir / "output")) == 4
    assert [p.name for p in power_spectrum_paths(rundir / "output")] == [
        f"powerspec_00{i}.txt" for i in range(4)
    ]
    argv = engine.restart(config, rundir, launch)
    assert argv[-4:] == [str(stand_in), "inputs/param.txt", "2", "3"]
    (rundir / "output" / "restartfiles").mkdir()
    (rundir / "output" / "restartfiles" / "restart.0").write_bytes(b"x")
    assert engine.restart(config, rundir, launch)[-3:] == [
        str(stand_in),
        "inputs/param.txt",
        "1",
    ]
    with pytest.raises(EngineError, match="no snapshot 007"):
        engine.restart_from_snapshot(config, rundir, launch, 7)
    engine.request_stop(rundir)
    assert (rundir / "output" / "stop").exists()
    (rundir / "log").write_text((folder / "stdout.txt").read_text())
    assert engine.outcome(config, rundir, 0).state == "completed"
    assert not (rundir / "output" / "stop").exists()  # too late: not left behind


def test_single_file_outputs_are_discovered(tmp_path):
    folder = data_path("gadget4-small/icfile16")
    rundir = tmp_path / "run"
    shutil.copytree(folder / "output", rundir / "output")
    snapshots = Gadget4Engine().outputs(rundir)
    assert [p.name for p in snapshots] == ["snapshot_000.hdf5", "snapshot_001.hdf5"]
    assert [p.name for p in group_catalogue_paths(rundir / "output")] == [
        "fof_subhalo_tab_000.hdf5",
        "fof_subhalo_tab_001.hdf5",
    ]


def test_softening_classes_follow_the_build():
    config = icfile16_config()
    build = BuildOptions({"PMGRID": "64", "NSOFTCLASSES": "2", "PERIODIC": None})
    params = parameters(config, build)
    assert sorted(k for k in params if k.startswith("SofteningComoving")) == [
        "SofteningComovingClass0",
        "SofteningComovingClass1",
    ]
    assert "DesLinkNgb" not in params


# -- end to end through the real dispatcher, with the stand-in executable -----------


@pytest.fixture
def g4_profile(stand_in):
    """A local cluster profile running the stand-in without an MPI launcher."""
    profile = {
        "kind": "local",
        "launcher": "",
        "executables": {"gadget4": str(stand_in)},
    }
    with dask.config.set({"simlab.clusters.g4local": profile}):
        yield "g4local"


def _dispatch_config(profile: str) -> RunConfig:
    config = with_code(ngenic32_config(), ("config_sh",))  # build probed from the exe
    data = config.model_dump()
    data["resources"] = {**data["resources"], "cluster": profile}
    return RunConfig(**data)


def _states(run) -> list[str]:
    return [event["state"] for event in run.dir.events()]


def test_dispatcher_runs_gadget4_to_completion(tmp_path, g4_profile):
    import xarray as xr

    from simlab.dispatch.dispatcher import Dispatcher
    from simlab.service.submission import create

    run = create(_dispatch_config(g4_profile), root=tmp_path)
    with Dispatcher() as dispatcher:
        assert dispatcher.submit(run.dir).result(timeout=120) == "completed"
    assert _states(run) == ["created", "queued", "running", "completed"]
    progress = run.progress
    assert (progress["step"], progress["a"], progress["fraction"]) == (501, 1.0, 1.0)
    assert [p.parent.name for p in run.snapshots] == [
        f"snapdir_00{i}" for i in range(4)
    ]
    with xr.open_dataset(run.snapshots[-1], engine="gadget4") as ds:
        assert ds.sizes["particle"] == 32**3
        assert ds.attrs["Time"] == pytest.approx(1.0)
    output = run.path / "output"
    assert len(group_catalogue_paths(output)) == 4
    assert len(power_spectrum_paths(output)) == 4
    assert "bye!" in run.logs()


@pytest.mark.slow
def test_time_limit_stop_is_resumed_from_restart_files(
    tmp_path, g4_profile, monkeypatch
):
    from simlab.dispatch.dispatcher import Dispatcher
    from simlab.service.submission import create

    monkeypatch.setenv("SIMLAB_STAND_IN_TIME_LIMIT_AT", "100")
    run = create(_dispatch_config(g4_profile), root=tmp_path)
    seen = []  # status.json as `simlab status` reads it, sampled all along
    with Dispatcher() as dispatcher:
        dispatcher.submit(run.dir)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen.append(run.dir.status())
            if seen[-1]["state"] == "completed":
                break
            time.sleep(0.02)
    assert seen[-1]["state"] == "completed" and seen[-1]["returncode"] == 0
    first = [s for s in seen if s.get("segment", 1) == 1 and s["state"] == "running"]
    second = [s for s in seen if s.get("segment") == 2 and s["state"] == "running"]
    assert first and second
    # the second segment shows its own process, nothing of the first one's end
    assert not [s for s in second if "returncode" in s or "stop_requested" in s]
    assert {s["job_pid"] for s in first}.isdisjoint(s["job_pid"] for s in second)
    states = _states(run)
    assert states == [
        "created",
        "queued",
        "running",
        "checkpointed",
        "queued",
        "running",
        "completed",
    ]
    log = run.logs()
    assert "reaching time-limit. stopping." in log
    assert "RESTART: Loading restart files" in log
    assert "inputs/param.txt 1" in log  # the second segment used RestartFlag 1
    assert run.progress["step"] == 501
    assert len(run.snapshots) == 4


@pytest.mark.slow
def test_user_stop_checkpoints_and_resumes_on_request(
    tmp_path, g4_profile, monkeypatch
):
    import time

    from simlab.dispatch.dispatcher import Dispatcher
    from simlab.service.submission import create

    monkeypatch.setenv("SIMLAB_STAND_IN_SPEEDUP", "20")  # about 13 s of replay
    run = create(_dispatch_config(g4_profile), root=tmp_path)
    with Dispatcher() as dispatcher:
        first = dispatcher.submit(run.dir)
        deadline = time.monotonic() + 60
        while (run.progress or {}).get("step", 0) < 30:
            assert time.monotonic() < deadline, run.status
            time.sleep(0.1)
        run.stop()
        assert first.result(timeout=60) == "checkpointed"
        assert (run.path / "output" / "restartfiles" / "restart.0").exists()
        assert not (run.path / "output" / "stop").exists()  # the code removed it
        stopped_at = run.progress["step"]
        assert 30 <= stopped_at < 501
        second = dispatcher.submit(run.dir, resume=True)
        assert second.result(timeout=120) == "completed"
    assert _states(run)[-4:] == ["checkpointed", "queued", "running", "completed"]
    log = run.logs()
    assert "stop-file detected. stopping." in log
    assert f"Sync-Point {stopped_at + 1}," in log.split("RESTART: Loading")[1]
    assert run.progress["step"] == 501


def test_run_power_spectrum_reads_the_codes_own_file(tmp_path):
    """``Run.power_spectrum`` prefers the file Gadget4 wrote over measuring."""
    from simlab.io.powerspec import read_powerspec
    from simlab.service.submission import create

    source = data_path("gadget4-small/ngenic32/output/powerspecs")
    last = sorted(source.glob("powerspec_[0-9][0-9][0-9].txt"))[-1]
    run = create(with_code(icfile16_config(), executable="/bin/true"), root=tmp_path)
    target = run.path / "output" / "powerspecs"
    target.mkdir(parents=True)
    shutil.copy(last, target / last.name)
    expected = read_powerspec(last)
    got = run.power_spectrum()
    np.testing.assert_array_equal(got.values, expected.values)
    np.testing.assert_array_equal(got.k.values, expected.k.values)
