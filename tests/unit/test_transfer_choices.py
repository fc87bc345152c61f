"""Transfer choices as plumbing: table formats, config fields and their errors,
caches, lazy imports, and the CAMB/CLASS glue with stand-in modules."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from simlab import cosmology
from simlab.config import Cosmology, InitialConditions, RunConfig, validate_config
from simlab.errors import ConfigError
from simlab.linear import boltzmann, cache
from simlab.linear.tables import TableError, read_table

DATA = Path(__file__).resolve().parents[1] / "data" / "linear"
PLANCK = Cosmology()


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMLAB_LINEAR_CACHE", str(tmp_path / "cache"))


# --- formats -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "source"),
    [
        ("camb_planck18_transfer_out.dat", "transfer", "column 7 ('total')"),
        ("class_planck18_tk.dat", "transfer", "column 6 ('d_m')"),
        ("class_planck18_camb_format_tk.dat", "transfer", "column 7 ('-T_tot/k2')"),
        ("camb_planck18_matterpower.dat", "power", "P(k)"),
        ("class_planck18_pk.dat", "power", "P(k)"),
    ],
)
def test_real_code_outputs_are_recognised(name, kind, source):
    table = read_table(DATA / name)
    assert table.kind == kind
    assert source in table.source
    assert table.k[0] < 1e-3 and table.k[-1] > 9


def test_headerless_seven_columns_is_camb_total(tmp_path):
    """Old CAMB, and CLASS with format = camb: no names, 7 columns, 7th is total."""
    data = np.loadtxt(DATA / "camb_planck18_transfer_out.dat")[:, :7]
    path = tmp_path / "old_camb.dat"
    np.savetxt(path, data)
    table = read_table(path)
    assert table.kind == "transfer" and "column 7" in table.source
    np.testing.assert_array_equal(table.values, data[:, 6])


def test_class_delta_is_divided_by_k_squared():
    """CLASS writes δ, CAMB δ/k²: both give the same T (CAMB/CLASS agree to 0.05 %
    in T, measured; without the k² they would differ by a factor 1e7)."""
    k = np.logspace(-4, 1, 200)

    def transfer(name):
        return cosmology.transfer_function(k, PLANCK, "file", transfer_file=DATA / name)

    camb = transfer("camb_planck18_transfer_out.dat")
    np.testing.assert_allclose(transfer("class_planck18_tk.dat"), camb, rtol=1e-3)


def test_two_column_power_gives_sqrt_p_over_k_ns():
    table = read_table(DATA / "class_planck18_pk.dat")
    np.testing.assert_allclose(
        table.transfer(0.9665) ** 2 * table.k**0.9665, table.values, rtol=1e-12
    )


BAD_TABLES = [
    ("", "0 rows of numbers"),
    ("# only a comment\n", "0 rows"),
    ("1 2\n" * 3, "at least 8"),
    ("".join(f"{k} 1 2\n" for k in range(1, 10)), "has 3 columns"),
    ("".join(f"{k} {k}\n" for k in range(9, 0, -1)), "positive and increasing"),
    ("".join(f"{k} -1\n" for k in range(1, 10)), "must be positive"),
    ("".join(f"{k} x\n" for k in range(1, 10)), "line 1 is not numbers"),
    ("".join(f"{k} 1\n" for k in range(1, 10)) + "10 1 1\n", "different numbers"),
    ("".join(f"{k} nan\n" for k in range(1, 10)), "not finite"),
    (
        "".join(f"{k} 1 1 1 1 1 {(-1) ** k}\n" for k in range(1, 10)),
        "changes sign",
    ),
    (
        "# k/h CDM baryon photon nu mass_nu other\n"
        + "".join(f"{k} 1 1 1 1 1 1\n" for k in range(1, 10)),
        "none of d_m, total",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_TABLES)
def test_bad_tables_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "table.dat"
    path.write_text(text)
    with pytest.raises(TableError, match=message):
        read_table(path)


def test_a_changed_file_is_read_again(tmp_path):
    path = tmp_path / "pk.dat"
    k = np.logspace(-4, 1, 40)
    np.savetxt(path, np.column_stack([k, 1e4 * k / (1 + (k / 0.02) ** 2.5)]))
    first = cosmology.linear_power(0.5, PLANCK, transfer="file", transfer_file=path)
    np.savetxt(path, np.column_stack([k, 1e4 * k / (1 + (k / 0.01) ** 2.5)]))
    second = cosmology.linear_power(0.5, PLANCK, transfer="file", transfer_file=path)
    assert float(first) != pytest.approx(float(second), rel=0.01)


# --- configuration -----------------------------------------------------------------


def test_new_fields_defaults():
    c = Cosmology()
    assert (c.radiation, c.N_eff) == (False, 3.044)
    ics = InitialConditions()
    assert (ics.transfer, ics.transfer_file) == ("eisenstein_hu", None)
    assert set(cosmology.TRANSFER_KINDS) == {
        "eisenstein_hu",
        "eisenstein_hu_nowiggle",
        "camb",
        "class",
        "file",
    }
    schema = RunConfig.model_json_schema()["$defs"]
    assert schema["InitialConditions"]["properties"]["transfer"]["enum"] == list(
        cosmology.TRANSFER_KINDS
    )
    assert "transfer_file" in schema["InitialConditions"]["properties"]
    assert {"radiation", "N_eff"} <= set(schema["Cosmology"]["properties"])


def test_transfer_file_is_resolved_and_round_trips(tmp_path, monkeypatch):
    monkeypatch.chdir(DATA)
    config = RunConfig(
        ics={"transfer": "file", "transfer_file": "class_planck18_tk.dat"}
    )
    assert config.ics.transfer_file == str(DATA / "class_planck18_tk.dat")
    monkeypatch.chdir(tmp_path)
    again = validate_config(config.model_dump(mode="json"))
    assert again.ics.transfer_file == config.ics.transfer_file


@pytest.mark.parametrize(
    ("ics", "message"),
    [
        ({"transfer": "file"}, "needs transfer_file"),
        ({"transfer": "file", "transfer_file": "/nonexistent/pk.dat"}, "no such file"),
        (
            {"transfer_file": str(DATA / "class_planck18_pk.dat")},
            "read only with transfer: file",
        ),
        ({"transfer": "file", "transfer_file": str(DATA / "README.md")}, "not numbers"),
        ({"transfer": "bbks"}, "'camb', 'class', 'file'"),
    ],
)
def test_transfer_errors_name_the_field(ics, message):
    from simlab.service.validation import validate_run

    with pytest.raises(ConfigError) as info:
        validate_run({"ics": ics})
    errors = {e["loc"]: e["msg"] for e in info.value.errors}
    loc = "ics.transfer" if ics.get("transfer") == "bbks" else "ics.transfer_file"
    assert loc in errors, errors
    assert message in errors[loc]


def test_a_stored_config_outlives_its_table_but_a_submission_does_not():
    """The model never opens the table: a run's config.json loads wherever it is
    read; the service refuses a table that is gone before anything is created."""
    from simlab.service.validation import validate_run

    stored = {"transfer": "file", "transfer_file": "/gone/pk.dat"}
    config = RunConfig.model_validate_json(json.dumps({"ics": stored}))
    assert config.ics.transfer_file == "/gone/pk.dat"
    with pytest.raises(ConfigError, match=r"no such file: /gone/pk\.dat"):
        validate_run(config)


def test_radiation_fields_and_curvature():
    with pytest.raises(ConfigError, match=r"cosmology\.N_eff"):
        validate_config({"cosmology": {"N_eff": -1}})
    c = Cosmology(radiation=True)
    assert c.Omega_r == pytest.approx(9.1365e-5, rel=1e-4)
    assert c.Omega_k == pytest.approx(-c.Omega_r, rel=1e-9)
    assert Cosmology(radiation=True, N_eff=0).Omega_r < c.Omega_r
    assert Cosmology().Omega_k == pytest.approx(0.0, abs=1e-15)


def test_growth_tables_are_keyed_on_radiation():
    a = 0.02
    plain = float(cosmology.growth_factor(a, PLANCK))
    assert float(cosmology.growth_factor(a, Cosmology(radiation=True))) != plain
    assert float(cosmology.growth_factor(a, PLANCK)) == plain
    assert float(
        cosmology.growth_factor(a, Cosmology(radiation=True, N_eff=2.0))
    ) != float(cosmology.growth_factor(a, Cosmology(radiation=True)))


# --- imports, caches and the Boltzmann codes' glue ---------------------------------


def test_importing_cosmology_and_config_does_not_import_camb_or_classy():
    code = (
        "import sys; import simlab.cosmology, simlab.config, simlab.ics; "
        "print(sorted(m for m in ('camb', 'classy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "classy", None)  # import classy raises
    boltzmann._transfer_cached.cache_clear()
    cosmology._boltzmann_transfer.cache_clear()
    with pytest.raises(ImportError, match=r"pip install 'simlab\[class\]'"):
        cosmology.linear_power(0.1, Cosmology(h=0.71), transfer="class")


class _StandInClass:
    """classy.Class replaying the stored CLASS table; records what it was given."""

    calls: ClassVar[list[dict]] = []

    def set(self, params):
        self.params = dict(params)

    def compute(self):
        type(self).calls.append(self.params)

    def get_transfer(self, z):
        assert z == 0.0
        table = np.loadtxt(DATA / "class_planck18_tk.dat")
        return {"k (h/Mpc)": table[:, 0], "d_m": table[:, 5], "d_cdm": table[:, 3]}

    def struct_cleanup(self):
        pass

    def empty(self):
        pass


@pytest.fixture
def stand_in_classy(monkeypatch):
    module = types.ModuleType("classy")
    module.Class = _StandInClass
    module.__version__ = "stand-in"
    monkeypatch.setitem(sys.modules, "classy", module)
    _StandInClass.calls = []
    boltzmann._transfer_cached.cache_clear()
    cosmology._boltzmann_transfer.cache_clear()
    yield _StandInClass
    boltzmann._transfer_cached.cache_clear()
    cosmology._boltzmann_transfer.cache_clear()


def test_class_glue_passes_the_cosmology_and_reads_d_m(stand_in_classy):
    c = Cosmology(radiation=True, N_eff=3.0)
    p = cosmology.linear_power(np.logspace(-3, 0, 20), c, transfer="class")
    (params,) = stand_in_classy.calls
    h = c.h
    assert params["h"] == h
    assert params["omega_b"] == pytest.approx(c.OmegaBaryon * h**2)
    assert params["omega_cdm"] == pytest.approx((c.Omega0 - c.OmegaBaryon) * h**2)
    assert params["Omega_k"] == pytest.approx(c.Omega_k)
    assert (params["N_ur"], params["N_ncdm"], params["T_cmb"]) == (3.0, 0, c.T_cmb)
    assert params["output"] == "mTk" and params["P_k_max_h/Mpc"] == boltzmann.K_MAX
    same = cosmology.linear_power(
        np.logspace(-3, 0, 20),
        c,
        transfer="file",
        transfer_file=DATA / "class_planck18_tk.dat",
    )
    np.testing.assert_allclose(p, same, rtol=1e-9)


def test_boltzmann_runs_once_per_cosmology_in_memory_and_on_disk(
    stand_in_classy, tmp_path
):
    cosmology.sigma_r(8.0, PLANCK, transfer="class")
    cosmology.linear_power(0.1, Cosmology(sigma8=0.7, n_s=0.95), transfer="class")
    assert len(stand_in_classy.calls) == 1  # σ8 and n_s do not change T(k)
    (cached,) = (tmp_path / "cache").glob("class-*.txt")
    assert "stand-in" in cached.read_text().splitlines()[0]
    # a new process (here: cleared memory caches) reads the file instead
    boltzmann._transfer_cached.cache_clear()
    cosmology._boltzmann_transfer.cache_clear()
    cosmology._amplitude.cache_clear()
    cosmology.linear_power(0.1, PLANCK, transfer="class")
    assert len(stand_in_classy.calls) == 1
    cosmology.linear_power(0.1, Cosmology(h=0.7), transfer="class")
    assert len(stand_in_classy.calls) == 2


def test_disk_cache_can_be_turned_off(stand_in_classy, monkeypatch, tmp_path):
    monkeypatch.setenv("SIMLAB_LINEAR_CACHE", "off")
    assert cache.cache_dir() is None
    cosmology.linear_power(0.1, PLANCK, transfer="class")
    assert not (tmp_path / "cache").exists()
    monkeypatch.delenv("SIMLAB_LINEAR_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "simlab" / "linear"


def test_transfer_file_only_with_file():
    with pytest.raises(ValueError, match="needs transfer_file"):
        cosmology.linear_power(0.1, PLANCK, transfer="file")
    with pytest.raises(ValueError, match="read only with transfer 'file'"):
        cosmology.sigma_r(8.0, PLANCK, transfer_file=DATA / "class_planck18_pk.dat")
