"""Initial conditions: the input spectrum, and ZA and 2LPT as theory says."""

from __future__ import annotations

import numpy as np
import pytest

from simlab import cosmology
from simlab.analysis.power import power_spectrum
from simlab.config import RunConfig
from simlab.ics import gaussian_field, lattice, lpt_displacements, make_particles


def _config(**ics):
    return RunConfig(
        box={"size": 256.0, "particles_per_side": 32},
        ics={"z_start": 49, "seed": 7, **ics},
    )


def _periodic_difference(x, y, box):
    d = x - y
    return d - box * np.round(d / box)


def test_same_seed_same_field_and_other_seed_differs():
    a = gaussian_field(_config())
    assert np.array_equal(a, gaussian_field(_config()))
    assert not np.allclose(a, gaussian_field(_config(seed=8)))


def test_paired_field_is_the_negative():
    paired = gaussian_field(_config(paired=True))
    assert np.array_equal(paired, -gaussian_field(_config()))


def test_fixed_field_has_exactly_the_input_power_per_mode():
    config = _config(fixed=True)
    delta_k = gaussian_field(config)
    n, box = 32, config.box.size
    kx = 2 * np.pi * np.fft.fftfreq(n, box / n)
    kz = 2 * np.pi * np.fft.rfftfreq(n, box / n)
    k = np.sqrt(kx[:, None, None] ** 2 + kx[None, :, None] ** 2 + kz**2)
    measured = np.abs(delta_k) ** 2 * box**3 / n**6
    expected = cosmology.linear_power(k, config.cosmology)
    inside = (k > 0) & (measured > 0)
    np.testing.assert_allclose(measured[inside], expected[inside], rtol=1e-10)


def test_particle_density_matches_linear_power_at_start():
    """Deposited ZA particles carry D(a)² P_lin within cosmic variance."""
    config = _config(lpt_order=1)
    particles = make_particles(config)
    pk = power_spectrum(particles.positions, config.box.size, 64, interlace=True)
    a = config.ics.start
    low = pk.where(pk.k < 0.5 * np.pi * 32 / config.box.size, drop=True)
    linear = cosmology.linear_power(low.k.values, config.cosmology, a=a)
    ratio = low.values / linear
    # each bin is a mean of n_modes/2 independent |δ_k|²: variance 2/n_modes
    sigma = np.sqrt(2.0 / low.n_modes.values)
    pulls = (ratio - 1) / sigma
    assert np.abs(pulls).max() < 4.5, pulls
    assert abs(np.average(ratio, weights=low.n_modes.values) - 1) < 0.05


def test_zeldovich_velocity_is_a_h_f_times_displacement():
    config = _config(lpt_order=1)
    particles = make_particles(config)
    q = lattice(32, config.box.size)
    disp = _periodic_difference(particles.positions, q, config.box.size)
    a = config.ics.start
    c = config.cosmology
    factor = 100 * a * cosmology.E(a, c) * cosmology.growth_rate(a, c)
    np.testing.assert_allclose(
        particles.velocities, factor * disp, rtol=1e-6, atol=1e-8
    )


def test_second_order_correction_scales_as_d1_squared():
    """|x_2LPT - x_ZA| / |x_ZA - q| grows like D1: compare two start times."""

    def relative_correction(z):
        za = make_particles(_config(z_start=z, lpt_order=1))
        lpt = make_particles(_config(z_start=z, lpt_order=2))
        q = lattice(32, 256.0)
        first = _periodic_difference(za.positions, q, 256.0)
        second = _periodic_difference(lpt.positions, za.positions, 256.0)
        return np.sqrt((second**2).mean() / (first**2).mean())

    c = _config().cosmology
    early, late = relative_correction(99.0), relative_correction(9.0)
    expected = cosmology.growth_factor(0.1, c) / cosmology.growth_factor(0.01, c)
    assert late / early == pytest.approx(expected, rel=0.02)
    assert 0 < early < 0.05


def _divergence(field, n, box):
    """Spectral ∇· of an (n³, 3) vector field, one axis at a time."""
    k = 2 * np.pi * np.fft.fftfreq(n, box / n)
    grid = field.reshape(n, n, n, 3)
    total = np.zeros((n, n, n))
    for i in range(3):
        shape = [1, 1, 1]
        shape[i] = n
        derivative = 1j * k.reshape(shape) * np.fft.fft(grid[..., i], axis=i)
        total += np.fft.ifft(derivative, axis=i).real
    return total


def _without_nyquist_and_mean(field):
    n = field.shape[0]
    fk = np.fft.rfftn(field)
    fk[n // 2], fk[:, n // 2], fk[:, :, n // 2], fk[0, 0, 0] = 0, 0, 0, 0
    return np.fft.irfftn(fk, s=field.shape, axes=(0, 1, 2))


def test_displacements_have_the_divergence_theory_asks():
    """-∇·Ψ1 = δ, and ∇·Ψ2 = Σ_{i<j}(φ,ii φ,jj - φ,ij²) computed independently here."""
    n, box = 32, 256.0
    delta_k = gaussian_field(_config())
    psi1, psi2 = lpt_displacements(delta_k, box, order=2)
    delta = np.fft.irfftn(delta_k, s=(n, n, n), axes=(0, 1, 2))
    np.testing.assert_allclose(-_divergence(psi1, n, box), delta, atol=1e-9)

    k = 2 * np.pi * np.fft.fftfreq(n, box / n)
    kk = np.meshgrid(k, k, k, indexing="ij")
    k2 = sum(x**2 for x in kk)
    k2[0, 0, 0] = 1
    full = np.fft.fftn(delta)
    phi = [
        [np.fft.ifftn(kk[i] * kk[j] * full / k2).real for j in range(3)]
        for i in range(3)
    ]
    source = (
        phi[0][0] * phi[1][1]
        + phi[0][0] * phi[2][2]
        + phi[1][1] * phi[2][2]
        - phi[0][1] ** 2
        - phi[0][2] ** 2
        - phi[1][2] ** 2
    )
    expected = _without_nyquist_and_mean(source)
    np.testing.assert_allclose(
        _divergence(psi2, n, box), expected, atol=1e-9 * np.abs(expected).max()
    )
    assert np.abs(expected).max() > 0
