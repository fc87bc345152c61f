"""The particle set every engine starts from, kept apart from any file format.

Gadget4 and the embedded PM engine read it as a Gadget4 HDF5 IC file; CONCEPT needs
the same particles in its own layout. Keeping the set format-free lets every code
start from identical initial conditions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Gadget4's internal unit system as used by simlab: Mpc/h, 1e10 Msun/h, km/s.
UNIT_LENGTH_IN_CM = 3.085678e24
UNIT_MASS_IN_G = 1.989e43
UNIT_VELOCITY_IN_CM_PER_S = 1e5
#: Critical density today in 1e10 Msun/h per (Mpc/h)^3 (Gadget4's 3 H0^2 / 8 pi G).
RHO_CRIT0 = 27.7536627


@dataclass
class ParticleSet:
    """Dark-matter particles at one time, in Gadget4 units.

    Attributes
    ----------
    positions : (N, 3) float32
        comoving positions in Mpc/h, wrapped into [0, box_size)
    velocities : (N, 3) float32
        peculiar velocities in km/s (not Gadget4's sqrt(a)-scaled value)
    ids : (N,) uint32 or uint64
        unique, non-zero particle ids
    mass : float
        mass of one particle in 1e10 Msun/h
    box_size : float
        comoving box side in Mpc/h
    a : float
        scale factor of the set
    """

    positions: np.ndarray
    velocities: np.ndarray
    ids: np.ndarray
    mass: float
    box_size: float
    a: float

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.positions.shape != (n, 3) or self.velocities.shape != (n, 3):
            raise ValueError(
                f"positions {self.positions.shape} and velocities "
                f"{self.velocities.shape} must both be ({n}, 3) for {n} ids"
            )

    def __len__(self) -> int:
        return len(self.ids)


def particle_mass(omega_m: float, box_size: float, n_particles: int) -> float:
    """Mass of one particle in 1e10 Msun/h so the box holds Ω_m ρ_crit L^3.

    Examples
    --------
    >>> round(particle_mass(0.3089, 32.0, 16**3), 6)  # the icfile16 fixture
    68.584851
    """
    return omega_m * RHO_CRIT0 * box_size**3 / n_particles
