"""Initial conditions: a Gaussian random field and its Zel'dovich / 2LPT particle set.

The field is drawn as real-space white noise from the run's seed (numpy PCG64), so it
does not depend on the number of FFT threads. Displacements follow Crocce, Pueblas &
Scoccimarro (2006): x = q + D1 Ψ1 + D2 Ψ2 with Ψ1 = -∇φ1, ∇²φ1 = δ_L and
Ψ2 = ∇φ2, ∇²φ2 = Σ_{i<j} (φ1,ii φ1,jj - φ1,ij²), D2 ≈ -3/7 D1².
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.fft

from simlab import cosmology
from simlab.particles import ParticleSet, particle_mass

if TYPE_CHECKING:
    from pathlib import Path

    from simlab.config import RunConfig


def wavenumbers(n: int, box_size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcastable kx, ky, kz in h/Mpc for an ``rfftn`` of an n³ mesh."""
    k_full = 2 * np.pi * np.fft.fftfreq(n, d=box_size / n)
    k_half = 2 * np.pi * np.fft.rfftfreq(n, d=box_size / n)
    return k_full[:, None, None], k_full[None, :, None], k_half[None, None, :]


def gaussian_field(config: RunConfig, n: int | None = None) -> np.ndarray:
    """Fourier modes δ_k (``rfftn`` layout) of the linear density field at a = 1.

    The spectrum is :func:`simlab.cosmology.linear_power` with ``ics.transfer`` (and
    ``ics.transfer_file``) normalised to ``cosmology.sigma8``.
    The discrete convention is ``P(k) = L³ / n⁶ ⟨|δ_k|²⟩``. ``ics.fixed`` sets every
    amplitude to its mean; ``ics.paired`` flips every phase by π.

    Examples
    --------
    >>> from simlab.config import RunConfig
    >>> cfg = RunConfig(box={"size": 100.0, "particles_per_side": 8})
    >>> gaussian_field(cfg).shape
    (8, 8, 5)
    """
    n = n or config.box.particles_per_side
    box = config.box.size
    rng = np.random.default_rng(config.ics.seed)
    noise = rng.standard_normal((n, n, n))
    white = scipy.fft.rfftn(noise, workers=-1)
    del noise
    if config.ics.fixed:
        amplitude = np.abs(white)
        np.divide(white, amplitude, out=white, where=amplitude > 0)
        white *= np.sqrt(n**3)
    if config.ics.paired:
        white *= -1
    kx, ky, kz = wavenumbers(n, box)
    k = np.sqrt(kx**2 + ky**2 + kz**2)
    # P depends on |k| alone: computed once per distinct |k| (at most tens of
    # thousands) rather than at each of the n³/2 modes, a third of the ICs' time
    distinct, where = np.unique(k, return_inverse=True)
    power = cosmology.linear_power(
        distinct,
        config.cosmology,
        a=1.0,
        transfer=config.ics.transfer,
        transfer_file=config.ics.transfer_file,
    )[where].reshape(k.shape)
    white *= np.sqrt(power * n**3 / box**3)
    white[0, 0, 0] = 0.0
    _zero_nyquist(white, n)
    return white


def _zero_nyquist(field_k: np.ndarray, n: int) -> None:
    """Zero the Nyquist planes, whose modes have no well-defined gradient."""
    if n % 2 == 0:
        field_k[n // 2, :, :] = 0
        field_k[:, n // 2, :] = 0
        field_k[:, :, n // 2] = 0


def lpt_displacements(
    delta_k: np.ndarray, box_size: float, order: int = 2
) -> tuple[np.ndarray, np.ndarray | None]:
    """First- and (if ``order`` is 2) second-order displacement fields, (n³, 3) each.

    Ψ1 is the Zel'dovich displacement per unit growth (δ = -∇·Ψ1); Ψ2 is ∇φ2 with
    the source built from second derivatives of φ1.
    """
    n = delta_k.shape[0]
    kx, ky, kz = wavenumbers(n, box_size)
    ks = (kx, ky, kz)
    k2 = kx**2 + ky**2 + kz**2
    k2[0, 0, 0] = 1.0
    inv_k2 = 1.0 / k2
    shape = (n, n, n)

    def real(field_k: np.ndarray) -> np.ndarray:
        return scipy.fft.irfftn(field_k, s=shape, workers=-1)

    psi1 = np.empty((n**3, 3))
    for axis, k_axis in enumerate(ks):
        psi1[:, axis] = real(1j * k_axis * inv_k2 * delta_k).ravel()
    if order == 1:
        return psi1, None

    # φ1,ij = k_i k_j δ_k / k² in Fourier space
    def phi_ij(i: int, j: int) -> np.ndarray:
        return real(ks[i] * ks[j] * inv_k2 * delta_k)

    diag = [phi_ij(i, i) for i in range(3)]
    source = diag[0] * diag[1] + diag[0] * diag[2] + diag[1] * diag[2]
    del diag
    for i, j in ((0, 1), (0, 2), (1, 2)):
        source -= phi_ij(i, j) ** 2
    source_k = scipy.fft.rfftn(source, workers=-1)
    del source
    _zero_nyquist(source_k, n)
    source_k[0, 0, 0] = 0
    psi2 = np.empty((n**3, 3))
    for axis, k_axis in enumerate(ks):
        # Ψ2 = ∇φ2, φ2_k = -S_k / k²
        psi2[:, axis] = real(-1j * k_axis * inv_k2 * source_k).ravel()
    return psi1, psi2


def lattice(n: int, box_size: float) -> np.ndarray:
    """Unperturbed particle positions q = (i, j, k) L/n, in C order, (n³, 3)."""
    side = np.arange(n) * (box_size / n)
    grid = np.meshgrid(side, side, side, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


def make_particles(config: RunConfig) -> ParticleSet:
    """The particle set at ``config.ics.start``: positions, velocities, ids."""
    n = config.box.particles_per_side
    box = config.box.size
    cosmo = config.cosmology
    a = config.ics.start
    psi1, psi2 = lpt_displacements(gaussian_field(config), box, config.ics.lpt_order)
    d1 = float(cosmology.growth_factor(a, cosmo))
    f1 = float(cosmology.growth_rate(a, cosmo))
    # peculiar velocity v = a H(a) f D Ψ, with H in km/s per Mpc/h
    hubble = 100.0 * a * float(cosmology.E(a, cosmo))
    positions = lattice(n, box)
    positions += d1 * psi1
    velocities = (hubble * f1 * d1) * psi1
    if psi2 is not None:
        d2 = float(cosmology.growth_factor_2lpt(a, cosmo))
        f2 = float(cosmology.growth_rate_2lpt(a, cosmo))
        positions += d2 * psi2
        velocities += (hubble * f2 * d2) * psi2
    np.mod(positions, box, out=positions)
    return ParticleSet(
        positions=positions,
        velocities=velocities,
        ids=np.arange(1, n**3 + 1, dtype=np.uint32 if n**3 < 2**32 else np.uint64),
        mass=particle_mass(cosmo.Omega0, box, n**3),
        box_size=box,
        a=a,
    )


def read_file_particles(config: RunConfig) -> ParticleSet:
    """The particles of ``ics.file`` in Mpc/h and km/s, with the config's mass.

    The mass is Ω_m ρ_crit L³ / N of the config (validation has checked the
    file's box, count, time and cosmology against it), so every code sees the
    same mass whatever constants the writer used.
    """
    from simlab.io.ics_file import length_unit, read_header, read_ic_particles

    if config.ics.file is None:
        raise ValueError("the config has no ics.file")
    header = read_header(config.ics.file)
    unit = length_unit(header, config.box.size)
    if unit is None:
        raise ValueError(
            f"ics.file: box {header.box_size:g} in the file, box.size "
            f"{config.box.size:g} in the config"
        )
    particles = read_ic_particles(header, unit)
    n = config.box.particles_per_side
    particles.mass = particle_mass(config.cosmology.Omega0, config.box.size, n**3)
    return particles


def initial_particles(config: RunConfig) -> ParticleSet:
    """The run's starting particles: those of ``ics.file``, else made from the seed."""
    if config.ics.file is not None:
        return read_file_particles(config)
    return make_particles(config)


def write_ics(config: RunConfig, path: Path) -> Path:
    """Write the starting particles as a Gadget4 HDF5 IC file (ICFormat 3)."""
    from simlab.io.gadget4_files import write_snapshot

    particles = initial_particles(config)
    write_snapshot(path, particles, cosmology=config.cosmology, ic=True)
    return path
