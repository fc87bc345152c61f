"""The embedded particle-mesh solver: CIC, FFT Poisson solve, FastPM kick-drift-kick.

State is (x, p) with x comoving in Mpc/h and p = a³ E(a) dx/da (Mpc/h, H0 = 1
units), so the peculiar velocity is v = 100 p / a km/s. The force is F = -∇φ with
∇²φ = 1.5 Ω_m δ. Kick and drift use the factors of Feng et al. (2016, FastPM), which
make each step exact for linear growth, so 20-40 steps keep large scales right:

    drift: Δx = p(a_c) [D(a_f) - D(a_i)] / (a_c³ E(a_c) D'(a_c))
    kick:  Δp = F(a_c) [G(a_f) - G(a_i)] / (a_c² E(a_c) G'(a_c)),  G = a³ E D'

The force kernel (docs/accuracy.md has the measurements behind every choice):

- The mesh is shifted against the coordinates so that the particle lattice of the
  initial conditions falls at cell centres: by h/2 for q = j L / n (simlab, N-GenIC),
  by whatever the lattice phase measured from the particles says otherwise. CIC is
  smooth there; at mesh points its weights have a kink and a displaced lattice's
  density is not linear in the displacement.
- FastPM's default kernel for a particle distribution without lattice order: the
  3-point finite-difference Laplacian, -1/Σ (2 sin(k_i h/2)/h)², and the 4-point
  gradient (8 sin(k_i h) - sin(2 k_i h)) / (6 h), no CIC deconvolution.
- While the particles still form the lattice of the initial conditions, any kernel
  that is non-zero where the lattice's own harmonics (k + 2π m / spacing) fall on the
  mesh couples each lattice mode to them: near-Nyquist modes then grow up to 50% too
  fast or too slow. The lattice kernel is zero outside the particle Nyquist cube and
  exact inside it for a lattice at cell centres: with b = Π cos(k_i h/2) (the CIC
  readout of a plane wave at cell centres) and t_i = 2 tan(k_i h/2)/h, a displacement
  u gives the mesh mode -i b (t·u), so the kernel i t / (b² |t|²) returns exactly the
  fluid force 1.5 Ω_m t̂ (t̂·u).
- The two are blended by the lattice order mean_i |⟨exp(i K x_i)⟩| (K = 2π n/L,
  the first reciprocal vector of the n³ lattice): 1 on the lattice, decaying as
  exp(-K² σ²/2) with the rms displacement σ, and about 1/√N once the lattice has
  melted (the weight w is then 0). w is a function of the positions only, so a
  resumed run is bitwise equal.
  Without an n³ lattice (N not a cube, mesh not a multiple of n) w = 0, and also on
  a mesh no finer than the lattice: there 1/b² grows without bound towards the
  Nyquist frequency and the blend blew up on the Gadget4 comparison.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.fft

from simlab import cosmology
from simlab.analysis import _compiled
from simlab.analysis.mesh import deposit, interpolate

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from simlab.config import Cosmology
    from simlab.particles import ParticleSet

#: Step spacings ``time_steps`` understands.
SPACINGS = ("loga", "a", "mixed")
#: Scale factor where "mixed" spacing turns from even in ln a to even in a.
MIXED_TRANSITION = 0.1
#: Particles (at most) the lattice order is measured on.
LATTICE_SAMPLE = 2**16
#: Mesh points per block of planes the z transforms go through (in place).
PLANE_BLOCK = 2**17


def time_steps(
    a_start: float, a_end: float, steps: int, outputs: list[float], spacing: str
) -> np.ndarray:
    """Step boundaries from a_start to a_end, with every output time among them.

    ``spacing`` is "a" (even in a), "loga" (even in ln a) or "mixed": even in
    u(a) = ln a below a_t = 0.1 and ln a_t + (a - a_t) / a_t above, i.e. steps of
    equal ln a early and of equal a late, with no jump in step size at a_t.
    """
    if spacing == "loga":
        grid = np.exp(np.linspace(np.log(a_start), np.log(a_end), steps + 1))
    elif spacing == "a":
        grid = np.linspace(a_start, a_end, steps + 1)
    elif spacing == "mixed":
        grid = _mixed_grid(a_start, a_end, steps)
    else:
        raise ValueError(f"spacing={spacing!r}; use one of {', '.join(SPACINGS)}")
    grid[0], grid[-1] = a_start, a_end
    tolerance = 1e-3 * np.log(a_end / a_start) / steps
    wanted = np.asarray([a for a in outputs if a_start < a <= a_end])
    if wanted.size:
        gap = np.abs(np.log(grid[:, None] / wanted[None, :])).min(axis=1)
        grid = grid[gap > tolerance]
    return np.unique(np.concatenate([grid, wanted]))


def _mixed_grid(a_start: float, a_end: float, steps: int) -> np.ndarray:
    """``steps`` + 1 points even in u(a) (see :func:`time_steps`)."""
    a_t = min(max(MIXED_TRANSITION, a_start), a_end)
    u_t = np.log(a_t / a_start)
    u = np.linspace(0.0, u_t + (a_end - a_t) / a_t, steps + 1)
    return np.where(
        u <= u_t, a_start * np.exp(np.minimum(u, u_t)), a_t + (u - u_t) * a_t
    )


@dataclass
class State:
    """Particles between steps: positions, momenta, the time and the force at it."""

    x: np.ndarray
    p: np.ndarray
    a: float
    force: np.ndarray | None = None


@dataclass(frozen=True)
class Green:
    """A Green's function of rfftn modes kept as its per-axis factors.

    G = c / (p_x p_y p_z (s_x + s_y + s_z)), 0 where that denominator is not
    positive. Both of the solver's kernels take this form, and made mode by mode
    from 1D factors they cost no memory: an n³/2 array of G would take as much as
    the modes themselves (1 GB at 512³).
    """

    constant: float
    products: tuple[np.ndarray, np.ndarray, np.ndarray]
    sums: tuple[np.ndarray, np.ndarray, np.ndarray]

    def factors(self) -> _compiled.GreenFactors:
        """(c, p_x, p_y, p_z, s_x, s_y, s_z), as the compiled kernels take them."""
        return (self.constant, *self.products, *self.sums)

    @functools.cached_property
    def array(self) -> np.ndarray:
        """G on every mode (the numpy path without numba)."""
        px, py, pz = self.products
        sx, sy, sz = self.sums
        denominator = (px[:, None, None] * py[None, :, None] * pz) * (
            sx[:, None, None] + sy[None, :, None] + sz
        )
        green = np.zeros_like(denominator)
        np.divide(self.constant, denominator, out=green, where=denominator > 0)
        return green


@dataclass
class _Lattice:
    """The kernel pieces that only exist for an n³ lattice on an f n mesh."""

    side: int
    green: Green  # 1.5 Ω_m / (b² |t|²) inside the particle Nyquist cube, else 0
    gradient: list[np.ndarray]  # t_i along each axis (i t_i is the gradient; 0 outside)


class PMSolver:
    """Periodic PM gravity on an n_mesh³ grid for equal-mass particles.

    ``n_particles`` (per side) names the lattice of the initial conditions; by default
    it is the cube root of the number of particles of the first force call;
    ``threads`` the FFT's worker threads (-1: every core).
    """

    def __init__(
        self,
        cosmo: Cosmology,
        box_size: float,
        n_mesh: int,
        n_particles: int | None = None,
        threads: int = -1,
    ) -> None:
        self.cosmo = cosmo
        self.threads = threads
        self.box_size = box_size
        self.n_mesh = n_mesh
        self.n_particles = n_particles
        self.lattice_weight = 0.0
        n, h = n_mesh, box_size / n_mesh
        k_full = 2 * np.pi * np.fft.fftfreq(n, d=h)
        k_half = 2 * np.pi * np.fft.rfftfreq(n, d=h)
        # FastPM's "3_4" kernel: 3-point Laplacian, 4-point gradient
        lap_full = (2 * np.sin(k_full * h / 2) / h) ** 2
        lap_half = (2 * np.sin(k_half * h / 2) / h) ** 2
        ones_full, ones_half = np.ones(n), np.ones(n // 2 + 1)
        # G = 1.5 Ω_m / (3-point Laplacian), 0 at k = 0
        self._green = Green(
            1.5 * cosmo.Omega0,
            (ones_full, ones_full, ones_half),
            (lap_full, lap_full, lap_half),
        )

        def grad(k: np.ndarray) -> np.ndarray:
            return (8 * np.sin(k * h) - np.sin(2 * k * h)) / (6 * h)

        # the gradient is i times these real factors along each axis
        self._gradient = [grad(k_full), grad(k_full), grad(k_half)]
        self._lattice: _Lattice | None = None
        self._lattice_for: int | None = None
        self._modes: np.ndarray | None = None

    def force(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Acceleration F = -∇φ at each particle, (N, 3), into ``out`` if given.

        Once the lattice has melted (w = 0) the 4-point gradient is a real-space
        stencil: one inverse FFT of the potential and a stencil read at each particle
        replace the three inverse FFTs of the force components (equal up to
        rounding). While w > 0 the lattice gradient is not a finite stencil, so the
        components are made in Fourier space.
        """
        lattice = self._lattice_kernel(len(x))
        weight, shift = self._lattice_state(x, lattice)
        self.lattice_weight = weight
        if out is None:
            out = np.empty((len(x), 3))
        delta_k = self.density_modes(x, shift)
        scale = self.n_mesh**3 / len(x)  # δ = scale × mesh - 1; G(0) = 0 drops the 1
        if weight == 0.0 and _compiled.available():
            psi = self.potential(delta_k, scale)
            _compiled.gradient_at(psi, x, self.box_size, shift, out)
            return out
        self._fourier_force(x, shift, delta_k, scale, weight, lattice, out)
        return out

    def density_modes(self, x: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """The Fourier modes of the CIC particle counts, in the solver's buffer.

        The particles, moved by ``shift`` cells, are deposited into the real rows of
        the complex array (FFTW's padded in-place layout) and transformed there, so
        the mesh and its modes never take memory at the same time; the buffer is
        kept from call to call (no fresh pages to fault in every step).
        """
        if self._modes is None:
            n = self.n_mesh
            self._modes = np.empty((n, n, n // 2 + 1), dtype=np.complex128)
        mesh = real_view(self._modes)
        deposit(x, self.box_size, self.n_mesh, scheme="cic", out=mesh, shift=shift)
        self._modes = forward_in_place(self._modes, self.threads)
        return self._modes

    def potential(self, delta_k: np.ndarray, scale: float) -> np.ndarray:
        """ψ = -φ on the mesh, a real view of ``delta_k`` (counts × ``scale``)."""
        _compiled.potential_modes(delta_k, self._green.factors(), scale)
        return inverse_in_place(delta_k, self.threads)

    def _fourier_force(
        self,
        x: np.ndarray,
        shift: np.ndarray,
        delta_k: np.ndarray,
        scale: float,
        weight: float,
        lattice: _Lattice | None,
        out: np.ndarray,
    ) -> None:
        """The force made one component at a time in Fourier space, into ``out``."""
        field_k = np.empty_like(delta_k)
        for axis in range(3):
            self._field(delta_k, axis, weight, lattice, scale, field_k)
            # transformed in place: field_k is refilled for the next axis
            component = inverse_in_place(field_k, self.threads)
            out[:, axis] = interpolate(
                component, x, self.box_size, scheme="cic", shift=shift
            )

    def _field(
        self,
        delta_k: np.ndarray,
        axis: int,
        weight: float,
        lattice: _Lattice | None,
        scale: float,
        out: np.ndarray,
    ) -> None:
        """Modes of force component ``axis`` of ``scale`` × the counts, into ``out``."""
        lattice_green = lattice.green if weight > 0.0 else None
        lattice_gradient = lattice.gradient[axis] if weight > 0.0 else None
        if _compiled.available():
            _compiled.gradient_field(
                delta_k,
                self._green.factors(),
                self._gradient[axis],
                axis,
                weight,
                lattice_green.factors() if lattice_green else None,
                lattice_gradient,
                out=out,
                scale=scale,
            )
            return
        shape = [1, 1, 1]
        shape[axis] = -1
        factor = self._green.array * ((1.0 - weight) * self._gradient[axis]).reshape(
            shape
        )
        if lattice_green is not None:
            factor += lattice_green.array * (weight * lattice_gradient).reshape(shape)
        factor *= scale
        np.multiply(delta_k, 1j * factor, out=out)

    def _lattice_kernel(self, n_particles: int) -> _Lattice | None:
        """The lattice kernel for ``n_particles`` (built once), or None."""
        if self._lattice_for == n_particles:
            return self._lattice
        side = self.n_particles or round(n_particles ** (1 / 3))
        self._lattice_for = n_particles
        self._lattice = None
        multiple = self.n_mesh // side
        if side**3 == n_particles and multiple >= 2 and self.n_mesh % side == 0:
            self._lattice = _lattice_kernel(
                self.n_mesh, side, self.box_size, self.cosmo.Omega0
            )
        return self._lattice

    def _lattice_state(
        self, x: np.ndarray, lattice: _Lattice | None
    ) -> tuple[float, np.ndarray]:
        """Lattice weight w in [0, 1] and the mesh shift (cells) per axis.

        The order |⟨exp(i K x)⟩| is measured on at most 2^16 evenly strided
        particles. For particles without lattice order it is about 0.9/√N_s; w maps
        3/√N_s (never reached by chance) to 0 and 1 to 1, so a melted lattice costs
        nothing. The shift puts the lattice at cell centres: its phase along each
        axis is the argument of ⟨exp(i K x)⟩. Without a lattice kernel the shift is
        half a cell, which puts q = j L / n at cell centres.
        """
        shift = np.full(3, 0.5)
        if lattice is None:
            return 0.0, shift
        sample = x[:: max(len(x) // LATTICE_SAMPLE, 1)]
        wavenumber = 2 * np.pi * lattice.side / self.box_size
        cells_per_site = self.n_mesh // lattice.side
        mean_phase = np.exp(1j * wavenumber * sample).mean(axis=0)
        orders = np.abs(mean_phase)
        offset = np.angle(mean_phase) / (2 * np.pi) * cells_per_site  # lattice at j + o
        shift = (0.5 - offset) % 1.0
        floor = 3.0 / np.sqrt(len(sample))
        weight = (orders.mean() - floor) / (1.0 - floor)
        return float(np.clip(weight, 0.0, 1.0)), shift

    def _drift_factor(self, ai: ArrayLike, ac: ArrayLike, af: ArrayLike) -> np.ndarray:
        c = self.cosmo
        dd = cosmology.growth_factor(af, c) - cosmology.growth_factor(ai, c)
        gp = cosmology.growth_factor_derivative(ac, c)
        return dd / (ac**3 * cosmology.E(ac, c) * gp)

    def _g(self, a: ArrayLike) -> np.ndarray:
        """G(a) = a³ E(a) D'(a), the momentum per unit displacement in linear theory."""
        c = self.cosmo
        return a**3 * cosmology.E(a, c) * cosmology.growth_factor_derivative(a, c)

    def _kick_factor(self, ai: ArrayLike, ac: ArrayLike, af: ArrayLike) -> np.ndarray:
        c = self.cosmo
        # dG/da = 1.5 Ω_m D / (a² E) from the linear growth equation
        g_prime = (
            1.5
            * c.Omega0
            * cosmology.growth_factor(ac, c)
            / (ac**2 * cosmology.E(ac, c))
        )
        return (self._g(af) - self._g(ai)) / (ac**2 * cosmology.E(ac, c) * g_prime)

    def step_factors(self, boundaries: ArrayLike) -> np.ndarray:
        """(kick, drift, kick) factors of each step between successive ``boundaries``.

        Computed for all steps at once, before the first: the background and growth
        tables then cost nothing per step, and a resumed run uses the same numbers.
        """
        a = np.asarray(boundaries, dtype=float)
        ai, af = a[:-1], a[1:]
        half = np.sqrt(ai * af)
        return np.stack(
            [
                self._kick_factor(ai, ai, half),
                self._drift_factor(ai, half, af),
                self._kick_factor(half, af, af),
            ],
            axis=1,
        )

    def step(
        self, state: State, a_next: float, factors: np.ndarray | None = None
    ) -> State:
        """One kick-drift-kick step from ``state.a`` to ``a_next``, as a new State.

        ``factors`` is this step's row of :meth:`step_factors` (computed if None).
        ``state`` is left as it was; :meth:`advance` does the same step in place.
        """
        force = None if state.force is None else state.force.copy()
        new = State(x=state.x.copy(), p=state.p.copy(), a=state.a, force=force)
        self.advance(new, a_next, factors)
        return new

    def advance(
        self, state: State, a_next: float, factors: np.ndarray | None = None
    ) -> None:
        """The step of :meth:`step` done in place: no copies of the N × 3 arrays.

        ``state.x``, ``state.p`` and ``state.force`` are overwritten (the force
        array is reused for the new force) and ``state.a`` becomes ``a_next``.
        """
        if factors is None:
            factors = self.step_factors([state.a, a_next])[0]
        kick_first, drift, kick_second = (float(f) for f in factors)
        x, p = state.x, state.p
        force = state.force if state.force is not None else self.force(x)
        self._kick_drift(x, p, force, kick_first, drift)
        state.force = self.force(x, out=force)
        self._kick(p, force, kick_second)
        state.a = a_next

    def _kick_drift(
        self, x: np.ndarray, p: np.ndarray, force: np.ndarray, kick: float, drift: float
    ) -> None:
        """p += kick F, then x += drift p wrapped into the box, in place."""
        if _compiled.available():
            _compiled.kick_drift(x, p, force, kick, drift, self.box_size)
            return
        self._kick(p, force, kick)
        x += drift * p
        np.mod(x, self.box_size, out=x)

    @staticmethod
    def _kick(p: np.ndarray, force: np.ndarray, kick: float) -> None:
        """p += kick F in place."""
        if _compiled.available():
            _compiled.kick(p, force, kick)
            return
        p += kick * force


def real_view(modes: np.ndarray) -> np.ndarray:
    """The (n, n, n) real mesh held in the rows of an (n, n, n // 2 + 1) array."""
    n = modes.shape[0]
    return modes.view(np.float64)[:, :, :n]


def forward_in_place(modes: np.ndarray, workers: int) -> np.ndarray:
    """``rfftn`` of the real mesh in ``modes``' rows, written over it.

    The z transform goes block of planes by block of planes (a block is read
    whole before its modes are written back), then the x-y transform in place
    (scipy returns the same memory; the returned array is the one to use).
    """
    n = modes.shape[0]
    mesh = real_view(modes)
    planes = max(PLANE_BLOCK // (n * n), 1)
    for start in range(0, n, planes):
        stop = min(start + planes, n)
        modes[start:stop] = scipy.fft.rfft(mesh[start:stop], axis=-1, workers=workers)
    return scipy.fft.fftn(modes, axes=(0, 1), overwrite_x=True, workers=workers)


def inverse_in_place(modes: np.ndarray, workers: int) -> np.ndarray:
    """``irfftn`` of ``modes`` written over them: the real view of the result."""
    n = modes.shape[0]
    modes = scipy.fft.ifftn(modes, axes=(0, 1), overwrite_x=True, workers=workers)
    mesh = real_view(modes)
    planes = max(PLANE_BLOCK // (n * n), 1)
    for start in range(0, n, planes):
        stop = min(start + planes, n)
        mesh[start:stop] = scipy.fft.irfft(
            modes[start:stop], n=n, axis=-1, workers=workers
        )
    return mesh


def _lattice_kernel(n_mesh: int, side: int, box_size: float, omega0: float) -> _Lattice:
    """Green's function and gradient exact for an n³ lattice at cell centres."""
    h = box_size / n_mesh
    m_full = np.fft.fftfreq(n_mesh, 1.0 / n_mesh)
    m_half = np.fft.rfftfreq(n_mesh, 1.0 / n_mesh)

    def axis(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inside = np.abs(m) < side / 2  # strictly inside the particle Nyquist planes
        angle = np.where(inside, np.pi * m / n_mesh, 0.0)
        t = np.where(inside, 2 * np.tan(angle) / h, 0.0)
        return t, np.cos(angle) ** 2 * inside

    t_full, b2_full = axis(m_full)
    t_half, b2_half = axis(m_half)
    green = Green(
        1.5 * omega0,
        (b2_full, b2_full, b2_half),
        (t_full**2, t_full**2, t_half**2),
    )
    return _Lattice(side=side, green=green, gradient=[t_full, t_full, t_half])


def state_from_particles(
    particles: ParticleSet, a: float | None = None
) -> tuple[State, np.ndarray]:
    """The solver state of a particle set, in ID order, and the IDs.

    Positions and momenta become float64; ``a`` defaults to the set's own time.
    With :func:`simlab.io.gadget4.read_particles` this starts the solver from any
    Gadget4 IC file or snapshot (one file or all pieces of a multi-file one).
    """
    a = particles.a if a is None else a
    ids, x, v = particles.ids, particles.positions, particles.velocities
    if np.any(ids[1:] < ids[:-1]):  # IC files are in ID order: no copy for them
        order = np.argsort(ids, kind="stable")
        ids, x, v = ids[order], x[order], v[order]
    x = x.astype(np.float64)
    if x.size and not (x.min() >= 0.0 and x.max() < particles.box_size):
        np.mod(x, particles.box_size, out=x)
    p = momentum_from_velocity(v.astype(np.float64), a)
    return State(x=x, p=p, a=float(a)), ids


def momentum_from_velocity(v: np.ndarray, a: float) -> np.ndarray:
    """p = a v / 100 from the peculiar velocity v in km/s."""
    return v * (a / 100.0)


def velocity_from_momentum(p: np.ndarray, a: float) -> np.ndarray:
    """Peculiar velocity in km/s from p."""
    return p * (100.0 / a)
