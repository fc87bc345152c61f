"""The CONCEPT engine against the real CONCEPT run in tests/data/concept-small.

The parameter file is compared value by value with the fixture's (both evaluated
with CONCEPT's own unit relations), the progress parser runs over the real stdout
logs, and runs go through the task runner and the real dispatcher with a test
double of the ``concept`` script that replays the fixture (tests/stand_ins).
"""

from __future__ import annotations

import ast
import itertools
import math
import re
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from simlab.config import RunConfig
from simlab.dispatch.dispatcher import Dispatcher
from simlab.dispatch.task import execute
from simlab.engines import registry
from simlab.engines.base import Launch
from simlab.engines.concept import ConceptEngine, parameter_file
from simlab.engines.concept_log import read_log, strip_ansi
from simlab.errors import ConfigError
from simlab.service.executables import find_executable
from simlab.service.submission import create
from simlab.service.validation import validate_run
from simlab.state.states import State
from tests.conftest import data_path

TEST_DOUBLE = (
    Path(__file__).resolve().parents[1] / "stand_ins" / "concept_test_double.py"
)

#: The fixture run (README "Cosmology and set-up") as a simlab configuration.
FIXTURE_RUN = {
    # CLASS's background with its default radiation (N_ur 3.046) and CLASS's
    # transfer functions for the ICs CONCEPT realised
    "cosmology": {"preset": "planck15", "radiation": True, "N_eff": 3.046},
    "box": {"size": 64.0, "particles_per_side": 32},
    "ics": {"a_start": 0.02, "lpt_order": 1, "transfer": "class"},
    "outputs": {"scale_factors": [0.5, 1.0]},
    "gravity": {"mesh": 64},
    "code": {
        "engine": "concept",
        "executable": str(TEST_DOUBLE),
        "options": {
            "gravity": "pm",
            "initial_conditions": "concept",
            "A_s": 2.066e-9,
            "random_seeds": {"primordial amplitudes": 1234, "primordial phases": 5678},
        },
    },
    "resources": {"cores": 2},
    "metadata": {"name": "concept32"},
}

# CONCEPT's unit relations (src/commons.py), in its base units Mpc and Gyr.
_PC_IN_M = 149597870700 * 648000 / math.pi
_UNITS = {
    "Mpc": 1.0,
    "kpc": 1e-3,
    "Gyr": 1.0,
    "km": 1e3 / (_PC_IN_M * 1e6),
    "s": 1 / (1e9 * 365.25 * 24 * 3600),
}


def concept_params(text: str, directory: str) -> dict:
    """Evaluate a parameter file as CONCEPT does: statements retried until they
    resolve, ``h`` inferred from ``H0``, ``param.dir`` the file's folder."""
    namespace = {"param": types.SimpleNamespace(dir=directory), **_UNITS}
    pending = ast.parse(text).body
    while pending:
        failed = []
        for statement in pending:
            try:
                exec(compile(ast.Module([statement], []), "params", "exec"), namespace)
            except NameError:
                failed.append(statement)
            if "H0" in namespace:
                namespace["h"] = namespace["H0"] / (100 * _UNITS["km"] / _UNITS["s"])
        assert len(failed) < len(pending), "unresolvable names in the parameter file"
        pending = failed
    return {
        k: v
        for k, v in namespace.items()
        if k not in (*_UNITS, "param", "h", "__builtins__")
    }


def _close(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return math.isclose(a, b, rel_tol=1e-12)
    return a == b


def test_fixture_run_maps_to_the_fixture_parameter_file(tmp_path):
    fixture = data_path("concept-small/concept32/params_concept32.py")
    config = RunConfig(**FIXTURE_RUN)
    ours = concept_params(parameter_file(config), str(tmp_path / "inputs"))
    theirs = concept_params(fixture.read_text(), str(tmp_path))
    # output folders differ on purpose: simlab's are the run directory's output/
    assert ours.pop("output_dirs") == {
        "snapshot": f"{tmp_path}/inputs/../output",
        "powerspec": f"{tmp_path}/inputs/../output",
    }
    theirs.pop("output_dirs")
    # the only extra keys are CONCEPT's and CLASS's defaults, written explicitly
    # (1LPT in the N-body gauge, CLASS 2.7.2's T_cmb and N_ur)
    assert ours.pop("realization_options") == {"LPT": 1}
    assert ours.pop("class_params") == {"T_cmb": 2.7255, "N_ur": 3.046}
    assert ours.keys() == theirs.keys()
    different = {
        k: (ours[k], theirs[k]) for k in ours if not _close(ours[k], theirs[k])
    }
    assert different == {}
    # the box in CONCEPT's units is 64 Mpc/h / h, as the README states
    assert math.isclose(ours["boxsize"], 94.478889873044, rel_tol=1e-13)


def test_concept_evolves_the_configs_background_and_radiation():
    """CONCEPT's CLASS background always has radiation; PM and Gadget4 evolve
    matter + Λ unless cosmology.radiation is on. CONCEPT's own GADGET-2 tutorial
    switches to its matter + Λ background for the same reason."""
    base = {**FIXTURE_RUN, "code": {"engine": "concept"}}
    plain = RunConfig(**{**base, "cosmology": {"preset": "planck15"}})
    ours = concept_params(parameter_file(plain), "/run/inputs")
    assert ours["enable_class_background"] is False
    # CLASS's perturbations get simlab's radiation content, not its defaults
    assert ours["class_params"] == {"T_cmb": 2.7255, "N_ur": 3.044}
    radiating = RunConfig(**{**base, "cosmology": {"preset": "planck15", "N_eff": 3}})
    radiating = radiating.model_copy(
        update={"cosmology": radiating.cosmology.model_copy(update={"radiation": True})}
    )
    ours = concept_params(parameter_file(radiating), "/run/inputs")
    assert "enable_class_background" not in ours
    assert ours["class_params"] == {"T_cmb": 2.7255, "N_ur": 3}
    # ICs CONCEPT realises: back-scaled as simlab's own without radiation, its
    # N-body gauge at a_begin with it (the fixture run)
    own = {"engine": "concept", "options": {"initial_conditions": "concept"}}
    for cosmo, expected in [
        (
            {"preset": "planck15"},
            {"LPT": 1, "gauge": "synchronous", "back-scale": True},
        ),
        ({"preset": "planck15", "radiation": True}, {"LPT": 1}),
    ]:
        config = RunConfig(**{**base, "cosmology": cosmo, "code": own})
        params = concept_params(parameter_file(config), "/run/inputs")
        assert params["realization_options"] == expected


def test_p3m_by_default_with_the_softening_gadget4_gets():
    config = RunConfig(**{**FIXTURE_RUN, "code": {"engine": "concept"}})
    ours = concept_params(parameter_file(config), "/run/inputs")
    assert ours["select_forces"] == {"matter": {"gravity": "p3m"}}
    assert ours["potential_options"] == {"gridsize": {"gravity": {"p3m": 64}}}
    # 1/30 of the 2 Mpc/h spacing, in CONCEPT's Mpc
    (eps,) = ours["select_softening_length"].values()
    assert eps * 0.6774 == pytest.approx(64 / 32 / 30, rel=1e-12)
    soft = {**FIXTURE_RUN["gravity"], "softening": 0.05}
    config = RunConfig(
        **{**FIXTURE_RUN, "gravity": soft, "code": {"engine": "concept"}}
    )
    ours = concept_params(parameter_file(config), "/run/inputs")
    assert ours["select_softening_length"]["matter"] * 0.6774 == pytest.approx(0.05)


def test_concept_refuses_what_its_generator_and_background_cannot_honour():
    own = {**FIXTURE_RUN["code"], "options": {"initial_conditions": "concept"}}
    eh = {**FIXTURE_RUN["ics"], "transfer": "eisenstein_hu"}
    with pytest.raises(ConfigError) as info:
        validate_run({**FIXTURE_RUN, "code": own, "ics": eh})
    (error,) = info.value.errors
    assert (error["loc"], error["value"]) == ("ics.transfer", "eisenstein_hu")
    assert "from CLASS" in error["msg"] and "'simlab'" in error["msg"]
    # simlab's own ICs carry any transfer function to CONCEPT
    simlab_ics = {**FIXTURE_RUN, "code": {**own, "options": {}}, "ics": eh}
    assert validate_run(simlab_ics).config.ics.transfer == "eisenstein_hu"
    # CONCEPT's universe is flat; a preset with radiation (Ω_k = -Ω_r) passes
    open_universe = {"preset": "planck15", "OmegaLambda": 0.6}
    with pytest.raises(ConfigError) as info:
        validate_run({**simlab_ics, "cosmology": open_universe})
    (error,) = info.value.errors
    assert (error["loc"], error["value"]) == ("cosmology.OmegaLambda", 0.6)
    assert "Omega_k = 0.0911" in error["msg"]


def test_parameter_file_takes_only_checked_values(tmp_path):
    text = parameter_file(RunConfig(**{**FIXTURE_RUN, "code": {"engine": "concept"}}))
    # simlab ICs by default, read from the inputs folder, no seeds or LPT order
    namespace = concept_params(text, "/run/inputs")
    assert namespace["initial_conditions"] == "/run/inputs/ics.hdf5"
    assert "random_seeds" not in namespace
    for bad, field in [
        ({"parameters": {"x; import os": 1}}, "code.options.parameters"),
        (
            {"parameters": {"Δt_base_background_factor": {1, 2}}},
            "code.options.parameters",
        ),
        ({"parameters": {"a_begin": float("nan")}}, "code.options.parameters"),
        ({"gravity": "tree"}, "code.options.gravity"),
        ({"bogus": 1}, "code.options.bogus"),
        ({"A_s": 2.0}, "code.options.A_s"),
    ]:
        code = {**FIXTURE_RUN["code"], "options": bad}
        with pytest.raises(ConfigError) as info:
            validate_run({**FIXTURE_RUN, "code": code})
        assert field in [e["loc"] for e in info.value.errors], (bad, info.value.errors)
    # CONCEPT aborts on FFT grids its processes cannot share: refused up front
    with pytest.raises(ConfigError) as info:
        validate_run({**FIXTURE_RUN, "resources": {"cores": 3}})
    assert sorted(e["loc"] for e in info.value.errors) == [
        "box.particles_per_side",
        "gravity.mesh",
    ]
    assert "divisible by the 3 MPI processes" in str(info.value)


def test_command_line_carries_overrides_as_literals(tmp_path):
    sneaky = "x'); import os; os.system('echo pwned"
    config = RunConfig(
        **{
            **FIXTURE_RUN,
            "code": {
                "engine": "concept",
                "executable": str(TEST_DOUBLE),
                "options": {"parameters": {"output_bases": {"snapshot": sneaky}}},
            },
        }
    )
    argv = ConceptEngine().command(config, tmp_path, validate_run(config).launch)
    assert argv[:6] == [
        str(TEST_DOUBLE),
        "-n",
        "2",
        "-p",
        str(tmp_path.resolve() / "inputs" / "params.py"),
        "--local",
    ]
    assert argv[6] == "-c"
    name, _, value = argv[7].partition(" = ")
    assert name == "output_bases"
    # the value parses back as the literal given, nothing executes
    assert ast.literal_eval(value) == {"snapshot": sneaky}


@pytest.mark.parametrize(
    ("log", "steps"),
    [("stdout.log", 143), ("stdout_p3m.log", 143), ("stdout_gadget.log", 143)],
)
def test_progress_over_fixture_stdout(log, steps):
    path = data_path(f"concept-small/concept32/{log}")
    raw = path.read_text(encoding="utf-8")
    engine = ConceptEngine()
    reports = [p for line in raw.splitlines(True) if (p := engine.parse_progress(line))]
    # the README's regex over the stripped text finds the same header blocks
    headers = re.findall(
        r"^Time step (\d+)\nScale factor:\s+(\S+)\nCosmic time:\s+(\S+)\s+Gyr\n"
        r"Step size:\s+(\S+)\s+Gyr",
        strip_ansi(raw),
        flags=re.MULTILINE,
    )
    assert len(headers) == steps
    assert [(p.step, p.a) for p in reports[:-1]] == [
        (int(s), float(a)) for s, a, _, _ in headers
    ]
    final = reports[-1]
    assert (final.step, final.steps, final.a) == (steps, steps, 1.0)
    a_values = [p.a for p in reports]
    assert all(x <= y for x, y in itertools.pairwise(a_values))
    assert reports[0].a == 0.02
    fractions = [p.fraction(0.02, 1.0) for p in reports]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0


def test_closing_lines_and_error_logs():
    root = data_path("concept-small")
    ok = read_log(root / "concept32" / "stdout.log")
    assert (ok["job_id"], ok["finished"], ok["successfully"]) == (4, True, True)
    assert ok["warnings"] == ok["errors"] == [] and ok["log_err"] is None

    warned = read_log(root / "errors" / "warning_a_mismatch_stdout.log")
    assert (warned["finished"], warned["successfully"]) == (True, False)
    assert warned["log_err"] == "/home/user/concept/job/13/log_err"
    assert warned["warnings"] == [
        "Warning: Mismatch between current parameters and those in the snapshot "
        '"../runs/icfile/ic/snapshot_a=0.50.hdf5": a: 0.4 vs 0.5'
    ]

    aborted = read_log(root / "errors" / "abort_unrecognised_snapshot_stdout.log")
    assert aborted["finished"] is False
    assert aborted["errors"][0].startswith(
        'Aborting: Cannot recognise "../runs/icfile/ic/gadget4_hdf5_snapshot_000.hdf5"'
    )
    traceback = read_log(root / "errors" / "python_exception_log_err.txt")
    assert traceback["errors"] == [
        "ValueError: h5py was built without MPI support, can't use mpio driver"
    ]


def test_outputs_are_found_in_time_order(tmp_path):
    fixture = data_path("concept-small/concept32")
    shutil.copytree(fixture / "output", tmp_path / "output")
    shutil.copy(fixture / "output_gadget" / "snapshot_a=1.00", tmp_path / "output")
    (tmp_path / "output" / ".snapshot_a=0.75.hdf5.tmp").touch()  # half-written
    engine = ConceptEngine()
    assert [p.name for p in engine.outputs(tmp_path)] == [
        "snapshot_a=0.50.hdf5",
        "snapshot_a=1.00",
        "snapshot_a=1.00.hdf5",
    ]
    assert [p.name for p in engine.power_spectra(tmp_path)] == [
        "powerspec_a=0.50",
        "powerspec_a=1.00",
    ]


def test_restart_continues_from_the_last_snapshot(tmp_path):
    fixture = data_path("concept-small/concept32/output/snapshot_a=0.50.hdf5")
    config = RunConfig(**FIXTURE_RUN)
    engine = ConceptEngine()
    launch = validate_run(config).launch
    assert engine.restart(config, tmp_path, launch) is None
    (tmp_path / "output").mkdir()
    shutil.copy(fixture, tmp_path / "output")
    argv = engine.restart(config, tmp_path, launch)
    overrides = dict(a.split(" = ", 1) for a in argv[argv.index("--local") + 1 :][1::2])
    assert ast.literal_eval(overrides["initial_conditions"]) == str(
        (tmp_path / "output" / fixture.name).resolve()
    )
    assert float(overrides["a_begin"]) == 0.49999999999999273  # the file's own a
    assert ast.literal_eval(overrides["output_times"]) == {
        "snapshot": (1.0,),
        "powerspec": (1.0,),
    }


def test_health_follows_the_lookup_order(tmp_path, monkeypatch):
    engine = ConceptEngine()
    launch = validate_run(FIXTURE_RUN).launch
    health = engine.health(launch)
    assert health.ok and "test-double" in health.version
    assert "code.executable" in health.message

    missing = {**FIXTURE_RUN, "code": {**FIXTURE_RUN["code"], "executable": "/no"}}
    with pytest.raises(ConfigError, match=r"code\.executable names '/no'"):
        validate_run(missing)

    def found(config: RunConfig | None, profile: dict | None) -> tuple:
        result = find_executable(engine, config, profile)
        return result.path, result.source

    monkeypatch.setenv("SIMLAB_CONCEPT", str(TEST_DOUBLE))
    assert found(None, None) == (str(TEST_DOUBLE), "SIMLAB_CONCEPT")
    profile = {"kind": "local", "executables": {"concept": str(TEST_DOUBLE)}}
    assert found(None, profile) == (
        str(TEST_DOUBLE),
        "executables.concept of the cluster profile",
    )
    monkeypatch.delenv("SIMLAB_CONCEPT")
    (tmp_path / "concept").symlink_to(TEST_DOUBLE)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert found(None, None) == (str(tmp_path / "concept"), "PATH")
    monkeypatch.setenv("PATH", "")
    assert not engine.health(Launch()).ok


@pytest.mark.parametrize("ic_format", ["concept", "gadget"])
def test_prepare_writes_simlab_particles_for_concept(tmp_path, ic_format):
    from simlab.ics import make_particles
    from simlab.io.concept import read_particles

    config = RunConfig(
        box={"size": 32.0, "particles_per_side": 8},
        outputs={"scale_factors": [1.0]},
        code={"engine": "concept", "options": {"ic_format": ic_format}},
    )
    ConceptEngine().prepare(config, tmp_path, Launch())
    name = "ics.hdf5" if ic_format == "concept" else "ics.gadget"
    params = concept_params(
        (tmp_path / "inputs" / "params.py").read_text(), str(tmp_path / "inputs")
    )
    assert params["initial_conditions"] == str(tmp_path / "inputs" / name)
    assert params["a_begin"] == config.ics.start
    written = read_particles(tmp_path / "inputs" / name)
    made = make_particles(config)
    tolerance = 1e-12 if ic_format == "concept" else 1e-6
    np.testing.assert_allclose(written.positions, made.positions, rtol=tolerance)
    np.testing.assert_allclose(
        written.velocities, made.velocities, rtol=tolerance, atol=tolerance
    )
    assert math.isclose(written.mass, made.mass, rel_tol=1e-12)
    assert written.a == made.a


def _queued(root: Path, **changes) -> object:
    run = create({**FIXTURE_RUN, **changes}, root=root)
    run.dir.transition("queued")
    return run


def test_a_run_with_warnings_completes_and_reports_them(tmp_path, monkeypatch):
    fixture = data_path("concept-small/errors/warning_a_mismatch_log_err.txt")
    monkeypatch.setenv("SIMLAB_CONCEPT_TEST_DOUBLE_SCENARIO", "warning")
    run = _queued(tmp_path)
    assert execute(run.path) == "completed"
    report = run.status["concept"]
    assert report["successfully"] is False
    assert report["warnings"][0].startswith("Warning: Mismatch between current")
    assert report["log_err_text"] == fixture.read_text()
    assert (run.path / "concept_log_err").read_text() == fixture.read_text()


def test_an_aborted_run_fails_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMLAB_CONCEPT_TEST_DOUBLE_SCENARIO", "abort")
    run = _queued(tmp_path)
    assert execute(run.path) == "failed"
    status = run.status
    assert status["returncode"] == 1
    assert "Cannot recognise" in status["concept"]["errors"][0]
    assert status["concept"]["log_err"].endswith("/job/9/log_err")


def test_end_to_end_through_the_dispatcher(tmp_path):
    assert registry.get("concept").name == "concept"
    run = create(FIXTURE_RUN, root=tmp_path)
    with Dispatcher() as dispatcher:
        future = dispatcher.submit(run.dir)
        assert future.result(timeout=120) == "completed"
    assert [e["state"] for e in run.dir.events()] == [
        "created",
        "queued",
        "running",
        "completed",
    ]
    assert run.state is State.COMPLETED
    progress = run.progress
    assert (progress["step"], progress["a"], progress["fraction"]) == (143, 1.0, 1.0)
    assert [p.name for p in run.snapshots] == [
        "snapshot_a=0.50.hdf5",
        "snapshot_a=1.00.hdf5",
    ]
    assert run.status["concept"]["successfully"] is True
    assert run.status["command"][0] == str(TEST_DOUBLE)
    assert "Time step 142" in strip_ansi(run.logs())


def test_test_double_is_stdlib_only():
    # CI runs it under any python3: nothing outside the standard library
    modules = set()
    for node in ast.walk(ast.parse(TEST_DOUBLE.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    assert "shutil" in modules
    assert modules - set(sys.stdlib_module_names) - {"__future__"} == set()
