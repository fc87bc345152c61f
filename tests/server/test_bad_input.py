"""Bad input through all three doors: Python, the CLI (exit 2) and REST (4xx).

Every case is refused with the field it concerns named, nothing is created on
disk, and no value is echoed back whole.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from simlab.cli import main
from simlab.errors import ConfigError
from simlab.service.submission import submit
from tests.conftest import DATA
from tests.helpers import wait_for

GADGET4 = {"code": {"engine": "gadget4", "executable": "/bin/true"}}
CONCEPT = {"code": {"engine": "concept", "executable": "/bin/true"}}

#: (case id, config, field the error must name, text its message must hold,
#:  REST status when not 422)
CASES = [
    ("omega0-range", {"cosmology": {"Omega0": 3}}, "cosmology.Omega0", "(0, 2]"),
    (
        "no-big-bang",
        {"cosmology": {"Omega0": 0.1, "OmegaLambda": 2}},
        "cosmology.OmegaLambda",
        "no big bang",
    ),
    (
        "baryons",
        {"cosmology": {"OmegaBaryon": 0.5, "Omega0": 0.3}},
        "cosmology.OmegaBaryon",
        "smaller than Omega0",
    ),
    ("omega-text", {"cosmology": {"Omega0": "lots"}}, "cosmology.Omega0", "number"),
    ("unknown-section", {"boxx": {}}, "boxx", "Extra inputs"),
    (
        "huge-integer",
        {"box": {"particles_per_side": 10**50}},
        "box.particles_per_side",
        "[2, 4096]",
    ),
    ("negative-box", {"box": {"size": -1}}, "box.size", "(0, 100000]"),
    ("z-start", {"ics": {"z_start": 2000}}, "ics.z_start", "(0, 1000]"),
    ("seed", {"ics": {"seed": -1}}, "ics.seed", "[0,"),
    ("lpt", {"ics": {"lpt_order": 3}}, "ics.lpt_order", "1 or 2"),
    (
        "start-twice",
        {"ics": {"z_start": 49, "a_start": 0.5}},
        "ics.a_start",
        "contradicts",
    ),
    (
        "million-outputs",
        {"outputs": {"redshifts": [0.5] * 1_000_000}},
        "outputs.redshifts",
        "at most 1000",
        413,
    ),
    (
        "duplicate-outputs",
        {"outputs": {"redshifts": [1.0, 0.5, 1.0]}},
        "outputs.redshifts.2",
        "given twice",
    ),
    ("no-outputs", {"outputs": {"redshifts": []}}, "outputs.redshifts", "at least"),
    (
        "output-before-start",
        {"outputs": {"scale_factors": [0.01]}},
        "outputs.scale_factors.0",
        "a_start",
    ),
    (
        "both-outputs",
        {"outputs": {"redshifts": [1.0], "scale_factors": [0.5]}},
        "outputs.scale_factors",
        "not both",
    ),
    (
        "infinite-softening",
        {"gravity": {"softening": float("inf")}},
        "gravity.softening",
        "finite",
    ),
    ("nan-size", {"box": {"size": float("nan")}}, "box.size", "finite"),
    ("steps", {"gravity": {"steps": 0}}, "gravity.steps", "[1, 100000]"),
    ("mesh-range", {"gravity": {"mesh": 4}}, "gravity.mesh", "[8, 8192]"),
    (
        "mesh-below-particles",
        {"gravity": {"mesh": 32}, "box": {"particles_per_side": 64}},
        "gravity.mesh",
        "coarser than 2 x particles per side (128)",
    ),
    (
        "zero-walltime",
        {"resources": {"walltime": "00:00"}},
        "resources.walltime",
        "zero",
    ),
    (
        "walltime-99",
        {"resources": {"walltime": "1:99:99"}},
        "resources.walltime",
        "below 60",
    ),
    (
        "walltime-arabic-digits",
        {"resources": {"walltime": "٠١:٠٠:٠٠"}},
        "resources.walltime",
        "ASCII",
    ),
    (
        "memory-fullwidth-digits",
        {"resources": {"memory": "４GB"}},
        "resources.memory",
        "ASCII",
    ),
    ("cores", {"resources": {"cores": 0}}, "resources.cores", "[1,"),
    ("pm-nodes", {"resources": {"nodes": 2}}, "resources.nodes", "one node"),
    (
        "cluster-path",
        {"resources": {"cluster": "../etc"}},
        "resources.cluster",
        "ASCII",
    ),
    (
        "unknown-profile",
        {"resources": {"cluster": "nope"}},
        "resources.cluster",
        "unknown cluster profile",
    ),
    ("name", {"metadata": {"name": "a b"}}, "metadata.name", "ASCII"),
    ("tag", {"metadata": {"tags": ["ok", "not ok"]}}, "metadata.tags.1", "ASCII"),
    (
        "long-description",
        {"metadata": {"description": "x" * 100_000}},
        "metadata.description",
        "at most 2000",
    ),
    ("unknown-engine", {"code": {"engine": "ramses"}}, "code.engine", "installed:"),
    ("engine-pattern", {"code": {"engine": "pm; rm -rf /"}}, "code.engine", "ASCII"),
    (
        "executable-newline",
        {"code": {"executable": "a\nb"}},
        "code.executable",
        "ASCII",
    ),
    (
        "pm-unknown-option",
        {"code": {"options": {"turbo": True}}},
        "code.options.turbo",
        "Extra inputs",
    ),
    (
        "pm-time-limit-text",
        {"code": {"options": {"time_limit": "soon"}}},
        "code.options.time_limit",
        "number",
    ),
    (
        "pm-negative-checkpoints",
        {"code": {"options": {"checkpoint_every": -3}}},
        "code.options.checkpoint_every",
        "[0, 100000]",
    ),
    (
        "gadget4-missing-executable",
        {"code": {"engine": "gadget4", "executable": "/nonexistent/Gadget4"}},
        "code.executable",
        "does not exist",
    ),
    (
        "gadget4-memory",
        {**GADGET4, "code": {**GADGET4["code"], "options": {"MaxMemSize": 0}}},
        "code.options.MaxMemSize",
        "(0, 100000000]",
    ),
    (
        "gadget4-ics",
        {**GADGET4, "code": {**GADGET4["code"], "options": {"ics": "music"}}},
        "code.options.ics",
        "'simlab'",
    ),
    (
        "concept-amplitude",
        {**CONCEPT, "code": {**CONCEPT["code"], "options": {"A_s": 1}}},
        "code.options.A_s",
        "(0, 1e-07)",
    ),
    (
        "concept-amplitude-list",
        {**CONCEPT, "code": {**CONCEPT["code"], "options": {"A_s": [2e-9]}}},
        "code.options.A_s",
        "number",
    ),
    (
        "concept-parameter-name",
        {
            **CONCEPT,
            "code": {**CONCEPT["code"], "options": {"parameters": {"import os": 1}}},
        },
        "code.options.parameters",
        "identifier",
    ),
]
_NGENIC_ICS = str(DATA / "gadget4-small/ngenic32/ics/snapdir_000")
_GADGET_ICS = str(DATA / "concept-small/icfile/ic/snapshot_a=0.50_gadget_fmt1")
_ICS_32 = {
    "box": {"size": 64.0, "particles_per_side": 32},
    "cosmology": {"preset": "planck15"},
}
CASES += [
    ("ics-file-missing", {"ics": {"file": "/gone/ics.hdf5"}}, "ics.file", "no such"),
    (
        "ics-file-not-ics",
        {"ics": {"file": str(DATA / "README.md")}},
        "ics.file",
        "neither Gadget4 HDF5 nor GADGET",
    ),
    (
        "ics-file-box",
        {
            **_ICS_32,
            "box": {"size": 100.0, "particles_per_side": 32},
            "ics": {"file": _NGENIC_ICS},
        },
        "ics.file",
        "box 64 Mpc/h in the file, box.size 100 in the config",
    ),
    (
        "ics-file-count",
        {
            **_ICS_32,
            "box": {"size": 64.0, "particles_per_side": 16},
            "ics": {"file": _GADGET_ICS, "a_start": 0.5},
        },
        "ics.file",
        "32768 particles in the file, box.particles_per_side 16",
    ),
    (
        "ics-file-time",
        {**_ICS_32, "ics": {"file": _GADGET_ICS, "z_start": 49}},
        "ics.file",
        "starting redshift 1 (a = 0.5) in the file, ics.z_start 49 in the config",
    ),
    (
        "ics-file-cosmology",
        {**_ICS_32, "cosmology": {"preset": "planck18"}, "ics": {"file": _NGENIC_ICS}},
        "ics.file",
        "Omega0 0.3089 in the file, cosmology.Omega0 0.3111 in the config",
    ),
    (
        "ics-file-fixed",
        {"ics": {"file": _NGENIC_ICS, "fixed": True}},
        "ics.fixed",
        "particles come from ics.file",
    ),
    (
        "ics-file-with-ngenic",
        {
            **_ICS_32,
            "ics": {"file": _NGENIC_ICS},
            "code": {**GADGET4["code"], "options": {"ics": "ngenic"}},
        },
        "code.options.ics",
        "N-GenIC makes its own particles",
    ),
]
IDS = [case[0] for case in CASES]


def _expect(error_list: list[dict], loc: str, text: str) -> None:
    by_loc = {e["loc"]: e for e in error_list}
    assert loc in by_loc, error_list
    assert text in by_loc[loc]["msg"], by_loc[loc]
    # no value is echoed back whole
    assert len(json.dumps(by_loc[loc]["value"], default=str)) < 200


def _nothing_created(root) -> None:
    assert not list(root.glob("*/status.json"))
    assert not [p for p in root.iterdir() if p.name.startswith(".") and p.is_dir()
                and p.name != ".simlab"]  # fmt: skip


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_python_refuses_with_the_field_named(case, tmp_path):
    _, data, loc, text, *_ = case
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        submit(data, root=tmp_path)
    assert time.monotonic() - started < 10
    _expect(info.value.errors, loc, text)
    assert loc in str(info.value)
    _nothing_created(tmp_path)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cli_exits_2_with_the_field_named(case, tmp_path):
    _, data, loc, text, *_ = case
    config = tmp_path / "run.json"
    config.write_text(json.dumps(data))
    root = tmp_path / "root"
    result = CliRunner().invoke(main, ["submit", str(config), "--root", str(root)])
    assert result.exit_code == 2, result.output
    assert loc in result.output and text in result.output
    assert "Traceback" not in result.output
    assert not list(root.glob("*/status.json"))


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_rest_answers_4xx_with_the_field_named(case, jp_fetch, manager):
    _, data, loc, text, *rest = case
    response = await jp_fetch(
        "simlab/api/runs",
        method="POST",
        body=json.dumps(data),
        raise_error=False,
    )
    expected = rest[0] if rest else 422
    assert response.code == expected, response.body[:300]
    assert len(response.body) < 20_000
    if expected == 422:
        _expect(json.loads(response.body)["errors"], loc, text)
    assert not list(manager.root.glob("*/status.json"))


def test_cli_reads_numbers_in_any_float_notation(tmp_path):
    result = CliRunner().invoke(
        main,
        ["validate", "--set", "code.options.time_limit=2e3", "--set", "box.size=1E2"],
    )
    assert result.exit_code == 0, result.output
    assert "time_limit: 2000.0" in result.output and "size: 100.0" in result.output
    refused = CliRunner().invoke(main, ["validate", "--set", "box.size=big"])
    assert refused.exit_code == 2
    assert "box.size = 'big'" in refused.output
    assert "the override was read as text" in refused.output


REST_BAD = [
    # (method, path, body, status, text in the answer)
    ("POST", "runs", "[" * 100_000 + "]" * 100_000, 400, "nested deeper"),
    ("POST", "runs", '{"box": {"size": ' + "9" * 5000 + "}}", 400, "not JSON"),
    ("POST", "runs", "{", 400, "not JSON"),
    ("POST", "runs", "[1, 2]", 400, "RunConfig object"),
    ("POST", "runs?wait=true&timeout=abc", "{}", 400, "timeout='abc'"),
    ("POST", "runs?wait=maybe", "{}", 400, "wait='maybe'"),
    ("GET", "runs?page=99999999999999999999", None, 400, "page="),
    ("GET", "runs?page=0", None, 400, "page=0"),
    ("GET", "runs?per_page=5000", None, 400, "per_page=5000"),
    ("GET", "runs?state=flying", None, 400, "flying"),
    ("GET", "runs?order=password", None, 400, "order"),
    ("GET", "runs?text=" + "x" * 5000, None, 400, "at most 200"),
    ("GET", "runs/..%2F..%2Fetc", None, 400, "not valid"),
    ("GET", "runs/not a run id", None, 400, "not valid"),
    ("POST", "clusters/local.pm/scale", '{"workers": "many"}', 400, "workers="),
    ("POST", "clusters/local.pm/scale", '{"workers": 5}', 404, "not running"),
]


@pytest.mark.parametrize("method,path,body,status,text", REST_BAD)
async def test_malformed_requests_are_refused_before_anything_happens(
    method, path, body, status, text, jp_fetch, manager
):
    response = await jp_fetch(
        "simlab/api", *path.split("?")[0].split("/"),
        params=dict(p.split("=", 1) for p in path.split("?")[1].split("&"))
        if "?" in path else None,
        method=method, body=body, raise_error=False,
    )  # fmt: skip
    assert response.code == status, response.body[:300]
    assert text in response.body.decode(errors="replace")[:2000]
    assert len(response.body) < 20_000
    assert not list(manager.root.glob("*/status.json"))


@pytest.mark.parametrize("command", ["run", "submit"])
def test_a_run_root_that_cannot_be_made_is_named_exit_2(command, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    root = blocker / "runs"
    result = CliRunner().invoke(
        main, [command, "--root", str(root), "--set", "box.particles_per_side=8"]
    )
    assert result.exit_code == 2, result.output
    assert f"run root {root} cannot be made" in result.output
    assert "--root" in result.output and "simlab.run-root" in result.output
    assert "Traceback" not in result.output


def _replaced_by_a_file(path: Path) -> bool:
    try:
        path.rename(path.with_name(f"{path.name}-{time.monotonic_ns()}"))
        path.write_text("")
    except OSError:
        return False
    return True


async def test_rest_answers_503_when_its_run_root_cannot_be_written(jp_fetch, manager):
    # the server's root becomes a file (moved aside whole: its background sync
    # writes into it meanwhile, and may make it again before the file is there)
    assert wait_for(lambda: _replaced_by_a_file(manager.root), 10)
    response = await jp_fetch(
        "simlab/api/runs",
        method="POST",
        body=json.dumps({"box": {"particles_per_side": 8}}),
        raise_error=False,
    )
    assert response.code == 503, response.body[:300]
    assert (
        f"run root {manager.root} cannot be made"
        in json.loads(response.body)["message"]
    )
