"""P(k): normalisation, binning, mode counts, shot noise, interlacing, inputs."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from simlab.analysis.power import (
    power_spectrum,
    power_spectrum_from_mesh,
    power_spectrum_table,
)


def full_fft_binned(
    delta: np.ndarray, box: float, edges: np.ndarray, scheme: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean |k|, mean P and mode count per bin from a full ``fftn`` (reference)."""
    n = delta.shape[0]
    delta_k = np.fft.fftn(delta)
    m = np.fft.fftfreq(n, 1.0 / n)
    mx, my, mz = np.meshgrid(m, m, m, indexing="ij")
    k = 2 * np.pi / box * np.sqrt(mx**2 + my**2 + mz**2)
    power = np.abs(delta_k) ** 2 * box**3 / n**6
    if scheme is not None:
        p = {"ngp": 1, "cic": 2, "tsc": 3}[scheme]
        window = (np.sinc(mx / n) * np.sinc(my / n) * np.sinc(mz / n)) ** p
        power /= window**2
    k_mean, p_mean, counts = [], [], []
    for lo, hi in itertools.pairwise(edges):
        inside = (k >= lo) & (k < hi)
        counts.append(inside.sum())
        k_mean.append(k[inside].mean() if inside.any() else np.nan)
        p_mean.append(power[inside].mean() if inside.any() else np.nan)
    return np.array(k_mean), np.array(p_mean), np.array(counts)


def default_edges(n: int, box: float) -> np.ndarray:
    return (np.arange(n // 2 + 1) + 0.5) * 2 * np.pi / box


def power_law_field(
    n: int, box: float, seed: int, amplitude: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian δ with P(k) = amplitude k⁻² (Mpc/h)³ on an n³ mesh, and its rfftn."""
    rng = np.random.default_rng(seed)
    white_k = np.fft.rfftn(rng.standard_normal((n, n, n)))
    kx, ky, kz = wavenumbers(n, box)
    k2 = kx**2 + ky**2 + kz**2
    k2[0, 0, 0] = 1.0
    delta_k = white_k * np.sqrt(amplitude / k2 * n**3 / box**3)
    delta_k[0, 0, 0] = 0.0
    delta_k[n // 2], delta_k[:, n // 2], delta_k[:, :, n // 2] = 0.0, 0.0, 0.0
    return np.fft.irfftn(delta_k, s=(n,) * 3, axes=(0, 1, 2)), delta_k


def wavenumbers(n: int, box: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = 2 * np.pi * np.fft.fftfreq(n, box / n)
    k_half = 2 * np.pi * np.fft.rfftfreq(n, box / n)
    return k[:, None, None], k[None, :, None], k_half[None, None, :]


def offset_lattice(n: int, box: float) -> np.ndarray:
    """Particles at the centres (i + 1/2) h between mesh points, (n³, 3)."""
    side = (np.arange(n) + 0.5) * (box / n)
    return np.stack(np.meshgrid(side, side, side, indexing="ij"), axis=-1).reshape(
        -1, 3
    )


def zeldovich_displacements(delta_k: np.ndarray, box: float) -> np.ndarray:
    """Ψ with δ = -∇·Ψ at the offset-lattice points q = (i + 1/2) h, (n³, 3)."""
    n = delta_k.shape[0]
    ks = wavenumbers(n, box)
    k2 = sum(k**2 for k in ks)
    k2[0, 0, 0] = 1.0
    half_cell = np.exp(1j * sum(ks) * box / (2 * n))  # shifts the samples by h / 2
    psi = [
        np.fft.irfftn(1j * k / k2 * delta_k * half_cell, s=(n,) * 3, axes=(0, 1, 2))
        for k in ks
    ]
    return np.stack(psi, axis=-1).reshape(-1, 3)


def zeldovich_particles(delta_k: np.ndarray, box: float) -> np.ndarray:
    n = delta_k.shape[0]
    moved = offset_lattice(n, box) + zeldovich_displacements(delta_k, box)
    return np.mod(moved, box)


# -- normalisation: a single Fourier mode -------------------------------------------


@pytest.mark.parametrize("deconvolve", [True, False])
def test_single_mode_has_the_predicted_power_in_its_bin(deconvolve: bool) -> None:
    n, box, m0 = 64, 100.0, 3
    h = box / n
    k0 = 2 * np.pi * m0 / box
    amplitude = 0.05 * h
    x = offset_lattice(n, box)
    x[:, 0] += amplitude * np.sin(k0 * x[:, 0])  # δ = -A k0 cos(k0 x)
    pk = power_spectrum(x, box, n, scheme="cic", deconvolve=deconvolve)
    # the continuum answer: the modes ±k0 hold L³ (A k0)² / 4 each
    continuum = box**3 * (amplitude * k0) ** 2 / 2
    # on the mesh, CIC of an offset lattice gives δ_k = sinc(π m0 / n) × continuum
    # (a one-sided difference of Ψ); deconvolution then divides by sinc²
    sinc = np.sinc(m0 / n)
    exact = continuum * (sinc**-2 if deconvolve else sinc**2)
    total = pk.values * pk.n_modes.values
    peak = int(np.argmax(total))
    assert pk.k_edges_low[peak] < k0 < pk.k_edges_high[peak]
    assert total[peak] == pytest.approx(exact, rel=1e-4)
    assert total[peak] == pytest.approx(continuum, rel=0.01 if deconvolve else 0.02)
    others = np.delete(total, peak)
    assert np.abs(others).max() < 1e-6 * total[peak]
    assert pk.attrs["scheme"] == "cic"
    assert pk.attrs["deconvolved"] == int(deconvolve)


# -- binning and mode counts -----------------------------------------------------------


@pytest.mark.parametrize("n", [16, 15])
def test_mode_counts_match_a_full_fft(n: int) -> None:
    box = 30.0
    delta = np.random.default_rng(1).normal(size=(n, n, n))
    pk = power_spectrum_from_mesh(delta, box)
    edges = default_edges(n, box)
    m = np.fft.fftfreq(n, 1.0 / n)
    mx, my, mz = np.meshgrid(m, m, m, indexing="ij")
    k = 2 * np.pi / box * np.sqrt(mx**2 + my**2 + mz**2)
    in_sphere = np.count_nonzero((k >= edges[0]) & (k < edges[-1]))
    assert int(pk.n_modes.sum()) == in_sphere
    _, _, counts = full_fft_binned(delta, box, edges)
    np.testing.assert_array_equal(pk.n_modes, counts[counts > 0])
    np.testing.assert_allclose(pk.k_edges_low, edges[:-1])
    np.testing.assert_allclose(pk.k_edges_high, edges[1:])


@pytest.mark.parametrize("scheme", [None, "cic", "tsc"])
def test_mesh_spectrum_equals_a_full_fft_reference(scheme: str | None) -> None:
    n, box = 32, 200.0
    delta, delta_k = power_law_field(n, box, seed=2)
    pk = power_spectrum_from_mesh(delta, box, scheme=scheme)
    k_ref, p_ref, counts = full_fft_binned(delta, box, default_edges(n, box), scheme)
    np.testing.assert_allclose(pk.values, p_ref, rtol=1e-10)
    np.testing.assert_allclose(pk.k.values, k_ref, rtol=1e-12)
    np.testing.assert_array_equal(pk.n_modes, counts)
    from_modes = power_spectrum_from_mesh(delta_k, box, scheme=scheme)
    np.testing.assert_allclose(from_modes.values, pk.values, rtol=1e-10)


def test_custom_bins_are_used_and_empty_bins_dropped() -> None:
    n, box = 16, 50.0
    delta, _ = power_law_field(n, box, seed=3)
    k_f = 2 * np.pi / box
    edges = np.array([0.1, 0.2, 0.9, 2.5, 3.0, 4.0, 30.0]) * k_f
    pk = power_spectrum_from_mesh(delta, box, k_bins=edges)
    k_ref, p_ref, counts = full_fft_binned(delta, box, edges)
    keep = counts > 0
    assert keep.tolist() == [False, False, True, True, True, True]
    np.testing.assert_allclose(pk.values, p_ref[keep], rtol=1e-10)
    np.testing.assert_allclose(pk.k_edges_low, edges[:-1][keep])
    np.testing.assert_allclose(pk.k, k_ref[keep], rtol=1e-12)


def test_the_zero_mode_is_never_binned() -> None:
    box = 50.0
    delta = np.random.default_rng(12).normal(size=(16, 16, 16))  # non-zero mean
    pk = power_spectrum_from_mesh(delta, box, k_bins=[0.0, 1.5 * 2 * np.pi / box])
    assert pk.n_modes.values.tolist() == [18]  # |m|² = 1 and 2, not m = 0
    _, p_ref, _ = full_fft_binned(delta, box, np.array([1e-9, 1.5 * 2 * np.pi / box]))
    np.testing.assert_allclose(pk.values, p_ref, rtol=1e-10)


@pytest.mark.parametrize("bins", [[0.1], [0.3, 0.2, 0.5], [[0.1, 0.2]]])
def test_bad_bins_are_rejected(bins: list) -> None:
    with pytest.raises(ValueError, match="k_bins must be at least 2 increasing"):
        power_spectrum_from_mesh(np.zeros((8, 8, 8)), 10.0, k_bins=bins)


def test_mesh_of_the_wrong_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"field must be a real \(n, n, n\) mesh"):
        power_spectrum_from_mesh(np.zeros((8, 8, 6)), 10.0)


# -- a Gaussian random field with a known P(k) ------------------------------------


def test_mesh_field_follows_the_input_power_law() -> None:
    n, box = 64, 256.0
    delta, _ = power_law_field(n, box, seed=4)
    pk = power_spectrum_from_mesh(delta, box)
    ratio = pk.values / pk.k.values**-2
    sigma = 4 / np.sqrt(pk.n_modes.values / 2)
    assert np.mean(np.abs(ratio - 1) < sigma + 0.05) > 0.9
    assert np.mean(ratio) == pytest.approx(1.0, abs=0.03)


def test_zeldovich_particles_reproduce_the_field_power() -> None:
    n, box, amplitude = 64, 256.0, 1e-3
    delta, delta_k = power_law_field(n, box, seed=5, amplitude=amplitude)
    assert np.std(zeldovich_displacements(delta_k, box)) < 0.1 * box / n
    x = zeldovich_particles(delta_k, box)
    pk_mesh = power_spectrum_from_mesh(delta, box)
    pk = power_spectrum(x, box, n, scheme="cic")
    low = pk.k.values < np.pi * n / box / 4  # k < k_Nyq / 4
    ratio = pk.values[low] / pk_mesh.values[low]
    np.testing.assert_allclose(ratio, 1.0, atol=0.02)
    model = amplitude * pk.k.values[low] ** -2
    sigma = 4 / np.sqrt(pk.n_modes.values[low] / 2)
    assert np.mean(np.abs(pk.values[low] / model - 1) < sigma + 0.05) > 0.8


# -- Poisson shot noise and interlacing --------------------------------------------


@pytest.fixture(scope="module")
def poisson_particles() -> tuple[np.ndarray, float, int]:
    box, n = 100.0, 32
    x = np.random.default_rng(6).uniform(0.0, box, size=(64**3, 3))
    return x, box, n


def test_poisson_noise_is_flat_at_the_shot_noise(
    poisson_particles: tuple[np.ndarray, float, int],
) -> None:
    x, box, n = poisson_particles
    pk = power_spectrum(x, box, n, scheme="cic", interlace=True)
    shot = box**3 / len(x)
    assert pk.attrs["shot_noise"] == pytest.approx(shot, rel=1e-14)
    low = pk.k.values < np.pi * n / box / 2
    assert np.mean(pk.values[low]) / shot == pytest.approx(1.0, abs=0.1)
    subtracted = power_spectrum(
        x, box, n, scheme="cic", interlace=True, subtract_shot_noise=True
    )
    np.testing.assert_allclose(subtracted.values, pk.values - shot, rtol=1e-12)
    assert abs(np.mean(subtracted.values[low])) / shot < 0.1
    assert subtracted.attrs["shot_noise_subtracted"] == 1
    assert pk.attrs["shot_noise_subtracted"] == 0


def test_interlacing_removes_aliasing_near_nyquist(
    poisson_particles: tuple[np.ndarray, float, int],
) -> None:
    x, box, n = poisson_particles
    shot = box**3 / len(x)
    high = slice(-4, None)  # the last four bins, k > 3/4 k_Nyq
    plain = power_spectrum(x, box, n, scheme="cic")
    interlaced = power_spectrum(x, box, n, scheme="cic", interlace=True)
    plain_error = np.mean(np.abs(plain.values[high] / shot - 1))
    interlaced_error = np.mean(np.abs(interlaced.values[high] / shot - 1))
    assert plain_error > 0.15  # aliased shot noise grows towards Nyquist
    assert interlaced_error < 0.5 * plain_error
    assert interlaced.attrs["interlaced"] == 1


def test_interlacing_keeps_a_large_scale_mode() -> None:
    n, box = 32, 100.0
    _, delta_k = power_law_field(n, box, seed=7, amplitude=1e-3)
    x = zeldovich_particles(delta_k, box)
    plain = power_spectrum(x, box, n)
    interlaced = power_spectrum(x, box, n, interlace=True)
    np.testing.assert_allclose(interlaced.values[:4], plain.values[:4], rtol=0.03)


# -- weights, inputs, metadata -----------------------------------------------------


def test_weights_generalise_the_shot_noise() -> None:
    box, n = 80.0, 16
    x = np.random.default_rng(8).uniform(0.0, box, size=(5000, 3))
    w = np.random.default_rng(9).uniform(0.5, 1.5, len(x))
    pk = power_spectrum(x, box, n, weights=w)
    assert pk.attrs["shot_noise"] == pytest.approx(
        box**3 * np.sum(w**2) / np.sum(w) ** 2, rel=1e-12
    )
    doubled = power_spectrum(x, box, n, weights=np.full(len(x), 2.0))
    unweighted = power_spectrum(x, box, n)
    np.testing.assert_allclose(doubled.values, unweighted.values, rtol=1e-5)
    assert doubled.attrs["shot_noise"] == pytest.approx(box**3 / len(x))


def test_a_snapshot_dataset_is_accepted() -> None:
    box = 60.0
    x = np.random.default_rng(10).uniform(0.0, box, size=(3000, 3)).astype(np.float32)
    snapshot = xr.Dataset(
        {"Coordinates": (("particle", "axis"), x)}, attrs={"BoxSize": box}
    )
    from_dataset = power_spectrum(snapshot, None, 16)
    from_array = power_spectrum(x, box, 16)
    xr.testing.assert_identical(from_dataset, from_array)
    with pytest.raises(ValueError, match="no 'BoxSize' attribute"):
        power_spectrum(snapshot.drop_attrs(), None, 16)
    with pytest.raises(ValueError, match="no 'Coordinates' variable"):
        power_spectrum(snapshot.rename(Coordinates="Pos"), None, 16)


def test_missing_box_size_is_named() -> None:
    with pytest.raises(ValueError, match="box_size is None"):
        power_spectrum(np.zeros((4, 3)), None, 8)


def test_result_metadata_and_netcdf_round_trip(tmp_path: Path) -> None:
    box = 40.0
    x = np.random.default_rng(11).uniform(0.0, box, size=(2000, 3))
    pk = power_spectrum(x, box, 16, scheme="tsc", interlace=True)
    assert pk.name == "power"
    assert pk.dims == ("k",)
    assert pk.attrs["units"] == "(Mpc/h)^3"
    assert pk.attrs["box_size"] == box
    assert pk.attrs["n_mesh"] == 16
    assert pk.attrs["scheme"] == "tsc"
    assert pk.attrs["n_particles"] == 2000
    assert pk.k.attrs["units"] == "h/Mpc"
    assert np.all(np.diff(pk.k.values) > 0)
    assert np.all((pk.k >= pk.k_edges_low) & (pk.k < pk.k_edges_high))
    path = tmp_path / "pk.nc"
    pk.to_netcdf(path, engine="h5netcdf")
    xr.testing.assert_identical(xr.load_dataarray(path, engine="h5netcdf"), pk)


def test_the_table_file_reads_back_as_xarray_would_have_written_it(tmp_path) -> None:
    rng = np.random.default_rng(7)
    x = rng.uniform(0.0, 50.0, size=(4096, 3))
    table = power_spectrum_table(x, 50.0, 16, interlace=True, subtract_shot_noise=True)
    table.attrs.update(a=0.5, z=1.0)
    table.write_netcdf(tmp_path / "table.nc")
    table.to_dataarray().to_netcdf(tmp_path / "xarray.nc", engine="h5netcdf")
    written = xr.load_dataarray(tmp_path / "table.nc", engine="h5netcdf")
    expected = xr.load_dataarray(tmp_path / "xarray.nc", engine="h5netcdf")
    xr.testing.assert_identical(written, expected)
    assert list(written.coords) == ["k", "n_modes", "k_edges_low", "k_edges_high"]
    assert written.attrs["a"] == 0.5 and written.attrs["shot_noise_subtracted"] == 1
    direct = power_spectrum(x, 50.0, 16, interlace=True, subtract_shot_noise=True)
    np.testing.assert_array_equal(written.values, direct.values)
