"""The compiled (numba) kernels give what the numpy path of mesh.py gives."""

from __future__ import annotations

import numpy as np
import pytest

from simlab.analysis import _compiled
from simlab.analysis.mesh import deposit, interpolate

pytest.importorskip("numba")


def _both(monkeypatch, function, *args, **kwargs):
    """``function`` on the numpy path, then on the compiled path."""
    monkeypatch.setenv("SIMLAB_NO_NUMBA", "1")
    assert not _compiled.available()
    numpy_result = function(*args, **kwargs)
    monkeypatch.setenv("SIMLAB_NO_NUMBA", "0")
    assert _compiled.available()
    return numpy_result, function(*args, **kwargs)


@pytest.fixture
def particles():
    rng = np.random.default_rng(3)
    # inside the box, on its edges, and outside it on both sides (wrapped)
    positions = rng.uniform(-30.0, 130.0, size=(5000, 3))
    positions[:10] = 0.0
    positions[10:20] = np.nextafter(100.0, 0.0)
    return positions


@pytest.mark.parametrize("scheme", ["ngp", "cic", "tsc"])
@pytest.mark.parametrize("shift", [0.0, 0.5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_deposit_equals_numpy_path(monkeypatch, particles, scheme, shift, dtype):
    positions = particles.astype(dtype)
    weights = np.random.default_rng(4).uniform(0.5, 2.0, len(positions))
    reference, compiled = _both(
        monkeypatch,
        deposit,
        positions,
        100.0,
        16,
        scheme,
        weights=weights,
        shift=shift,
    )
    np.testing.assert_allclose(compiled, reference, rtol=1e-12, atol=1e-12)
    assert compiled.sum() == pytest.approx(weights.sum(), rel=1e-12)


def test_float32_mesh_matches_float64(monkeypatch, particles):
    monkeypatch.setenv("SIMLAB_NO_NUMBA", "0")
    single = deposit(particles, 100.0, 16, "cic", out=np.empty((16,) * 3, np.float32))
    double = deposit(particles, 100.0, 16, "cic")
    np.testing.assert_allclose(single, double, rtol=1e-5)


def test_result_does_not_depend_on_threads(monkeypatch, particles):
    import numba

    monkeypatch.setenv("SIMLAB_NO_NUMBA", "0")
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = deposit(particles, 100.0, 16, "tsc")
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = deposit(particles, 100.0, 16, "tsc")
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)


@pytest.mark.parametrize("scheme", ["ngp", "cic", "tsc"])
def test_interpolate_equals_numpy_path(monkeypatch, particles, scheme):
    field = np.random.default_rng(5).normal(size=(16, 16, 16))
    reference, compiled = _both(
        monkeypatch, interpolate, field, particles, 100.0, scheme
    )
    np.testing.assert_allclose(compiled, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scheme", ["ngp", "cic", "tsc"])
def test_non_finite_positions_are_refused(monkeypatch, particles, scheme):
    monkeypatch.setenv("SIMLAB_NO_NUMBA", "0")
    particles[7, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        deposit(particles, 100.0, 16, scheme)
    particles[7, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        interpolate(np.zeros((16,) * 3), particles, 100.0, scheme)


@pytest.mark.parametrize("compiled", ["1", "0"])
def test_deposit_into_a_strided_view(monkeypatch, particles, compiled):
    monkeypatch.setenv("SIMLAB_NO_NUMBA", "1" if compiled == "0" else "0")
    padded = np.full((16, 16, 18), 7.0, dtype=np.float32)
    view = deposit(particles, 100.0, 16, "cic", out=padded[:, :, :16])
    contiguous = deposit(
        particles, 100.0, 16, "cic", out=np.empty((16,) * 3, np.float32)
    )
    np.testing.assert_allclose(view, contiguous, rtol=1e-6)
    assert np.all(padded[:, :, 16:] == 7.0)  # the padding is left alone
