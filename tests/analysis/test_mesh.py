"""Mass assignment: conservation, kernel weights, periodicity, adjointness, windows."""

from __future__ import annotations

import numpy as np
import pytest

from simlab.analysis import mesh
from simlab.analysis.mesh import (
    assignment_window,
    deposit,
    interpolate,
    overdensity,
    window_factors,
)

BOX = 50.0
SCHEMES = ("ngp", "cic", "tsc")


def random_positions(n: int, seed: int = 0, dtype: type = np.float64) -> np.ndarray:
    """Uniform positions plus particles exactly at 0 and just below L."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, BOX, size=(n, 3)).astype(dtype)
    x[0] = 0.0
    x[1] = np.nextafter(dtype(BOX), dtype(0.0))
    x[2] = [0.0, BOX - 1e-9, np.nextafter(dtype(BOX), dtype(0.0))]
    return x


def tsc_weights(d: float) -> np.ndarray:
    """Analytic TSC weights of points j - 1, j, j + 1 for offset d = u - j."""
    return np.array([0.5 * (0.5 - d) ** 2, 0.75 - d**2, 0.5 * (0.5 + d) ** 2])


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mass_is_conserved(scheme: str, dtype: type) -> None:
    x = random_positions(5000, dtype=dtype)
    grid = deposit(x, BOX, 16, scheme)
    assert grid.shape == (16, 16, 16)
    assert grid.dtype == np.float64
    assert abs(grid.sum() - len(x)) < 1e-10 * len(x)
    assert grid.min() >= 0.0


def test_cic_particle_on_a_mesh_point_fills_one_cell() -> None:
    h = BOX / 8
    grid = deposit(np.array([[2 * h, 3 * h, 5 * h]]), BOX, 8, "cic")
    assert grid[2, 3, 5] == 1.0
    assert np.count_nonzero(grid) == 1


def test_cic_particle_halfway_splits_in_two() -> None:
    h = BOX / 8
    grid = deposit(np.array([[2.5 * h, 3 * h, 5 * h]]), BOX, 8, "cic")
    assert grid[2, 3, 5] == pytest.approx(0.5, abs=1e-14)
    assert grid[3, 3, 5] == pytest.approx(0.5, abs=1e-14)
    assert np.count_nonzero(grid) == 2


def test_cic_weights_are_trilinear() -> None:
    h = BOX / 8
    d = np.array([0.2, 0.7, 0.4])
    grid = deposit(((np.array([1, 4, 6]) + d) * h)[None, :], BOX, 8, "cic")
    wx, wy, wz = (np.array([1 - di, di]) for di in d)
    expected = wx[:, None, None] * wy[None, :, None] * wz[None, None, :]
    np.testing.assert_allclose(grid[1:3, 4:6, 6:8], expected, rtol=0, atol=1e-14)
    assert np.count_nonzero(grid) == 8


def test_ngp_assigns_to_the_nearest_point() -> None:
    h = BOX / 8
    x = np.array([[2.4 * h, 2.6 * h, 7.7 * h]])
    grid = deposit(x, BOX, 8, "ngp")
    assert grid[2, 3, 0] == 1.0  # 7.7 rounds to 8, which wraps to 0
    assert grid.sum() == 1.0


@pytest.mark.parametrize("d", [-0.5, -0.3, 0.0, 0.1, 0.45])
def test_tsc_weights_match_the_analytic_kernel(d: float) -> None:
    h = BOX / 16
    u = np.array([5 + d, 9 + 0.25, 12 - 0.1])
    grid = deposit((u * h)[None, :], BOX, 16, "tsc")
    j = np.round(u).astype(int)
    offsets = u - j
    wx, wy, wz = (tsc_weights(o) for o in offsets)
    expected = wx[:, None, None] * wy[None, :, None] * wz[None, None, :]
    block = grid[j[0] - 1 : j[0] + 2, j[1] - 1 : j[1] + 2, j[2] - 1 : j[2] + 2]
    np.testing.assert_allclose(block, expected, rtol=0, atol=1e-14)
    assert tsc_weights(d).sum() == pytest.approx(1.0, abs=1e-15)
    assert block.sum() == pytest.approx(1.0, abs=1e-14)


def test_cic_wraps_across_the_box_edge() -> None:
    h = BOX / 8
    grid = deposit(np.array([[BOX - 0.25 * h, 0.0, 0.0]]), BOX, 8, "cic")
    assert grid[7, 0, 0] == pytest.approx(0.25, abs=1e-12)
    assert grid[0, 0, 0] == pytest.approx(0.75, abs=1e-12)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_positions_outside_the_box_are_wrapped(scheme: str) -> None:
    x = random_positions(500)
    moved = x + BOX * np.array([1.0, -1.0, 3.0])
    np.testing.assert_allclose(
        deposit(moved, BOX, 8, scheme), deposit(x, BOX, 8, scheme), atol=1e-9
    )


def test_non_finite_positions_are_rejected() -> None:
    x = random_positions(10)
    x[4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        deposit(x, BOX, 8)


def test_unknown_scheme_names_the_value_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"scheme='pcs'.*'ngp', 'cic', 'tsc'"):
        deposit(random_positions(10), BOX, 8, "pcs")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"positions": np.zeros((4, 4))}, "positions must have shape"),
        ({"box_size": -1.0}, "box_size must be a positive"),
        ({"n_mesh": 0}, "n_mesh must be at least 1"),
        ({"weights": np.ones(3)}, r"weights must have shape \(10,\)"),
        (
            {"out": np.zeros((4, 4, 4))},
            r"out must be a float32 or float64 array of shape \(8, 8, 8\)",
        ),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    args = {"positions": random_positions(10), "box_size": BOX, "n_mesh": 8}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        deposit(**args)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_weights_scale_each_particle(scheme: str) -> None:
    x = random_positions(300, seed=3)
    w = np.random.default_rng(4).uniform(0.5, 2.0, len(x))
    grid = deposit(x, BOX, 8, scheme, weights=w)
    assert grid.sum() == pytest.approx(w.sum(), rel=1e-12)
    one_by_one = sum(
        wi * deposit(xi[None], BOX, 8, scheme) for xi, wi in zip(x, w, strict=True)
    )
    np.testing.assert_allclose(grid, one_by_one, rtol=1e-12)


def test_shift_moves_particles_by_cells() -> None:
    x = random_positions(200, seed=5)
    h = BOX / 8
    np.testing.assert_allclose(
        deposit(x, BOX, 8, "tsc", shift=0.5),
        deposit(x + 0.5 * h, BOX, 8, "tsc"),
        atol=1e-12,
    )


@pytest.mark.parametrize("scheme", ["cic", "tsc"])
def test_a_shift_per_axis_moves_each_axis_by_its_cells(scheme: str) -> None:
    x = random_positions(200, seed=6)
    shift = np.array([0.5, 0.25, 0.9])
    moved = x + shift * (BOX / 8)
    np.testing.assert_allclose(
        deposit(x, BOX, 8, scheme, shift=shift),
        deposit(moved, BOX, 8, scheme),
        atol=1e-12,
    )
    field = random_positions(512, seed=7)[:, 0].reshape(8, 8, 8)
    np.testing.assert_allclose(
        interpolate(field, x, BOX, scheme, shift=shift),
        interpolate(field, moved, BOX, scheme),
        atol=1e-12,
    )


def test_out_is_zeroed_filled_and_returned_in_its_dtype() -> None:
    x = random_positions(1000, seed=6)
    out = np.full((8, 8, 8), 7.0, dtype=np.float32)
    grid = deposit(x, BOX, 8, "cic", out=out)
    assert grid is out
    np.testing.assert_allclose(out, deposit(x, BOX, 8, "cic"), rtol=1e-6)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_chunking_does_not_change_the_result(
    scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = random_positions(1000, seed=7)
    field = np.random.default_rng(8).normal(size=(8, 8, 8))
    whole = deposit(x, BOX, 8, scheme)
    read = interpolate(field, x, BOX, scheme)
    monkeypatch.setattr(mesh, "_CHUNK_ENTRIES", 100)  # 100 // p³ particles a chunk
    np.testing.assert_allclose(deposit(x, BOX, 8, scheme), whole, rtol=1e-13)
    np.testing.assert_allclose(interpolate(field, x, BOX, scheme), read, rtol=1e-13)


def test_two_dimensional_positions_give_a_square_mesh() -> None:
    x = random_positions(400)[:, :2]
    grid = deposit(x, BOX, 10, "cic")
    assert grid.shape == (10, 10)
    assert grid.sum() == pytest.approx(400, rel=1e-12)


def test_cic_interpolation_of_a_linear_field_is_exact() -> None:
    n = 8
    h = BOX / n
    i, j, k = np.meshgrid(*(np.arange(n),) * 3, indexing="ij")
    field = 1.0 + 2.0 * i - 0.5 * j + 0.25 * k
    rng = np.random.default_rng(9)
    u = rng.uniform(0.0, n - 1.0, size=(100, 3))  # inside cells, away from the wrap
    values = interpolate(field, u * h, BOX, "cic")
    np.testing.assert_allclose(
        values, 1.0 + 2.0 * u[:, 0] - 0.5 * u[:, 1] + 0.25 * u[:, 2], rtol=1e-13
    )


@pytest.mark.parametrize("scheme", SCHEMES)
def test_interpolate_is_the_adjoint_of_deposit(scheme: str) -> None:
    x = random_positions(2000, seed=10)
    w = np.random.default_rng(11).uniform(0.1, 1.0, len(x))
    field = np.random.default_rng(12).normal(size=(12, 12, 12))
    pushed = np.sum(field * deposit(x, BOX, 12, scheme, weights=w))
    pulled = np.sum(w * interpolate(field, x, BOX, scheme))
    assert pushed == pytest.approx(pulled, rel=1e-12)


def test_interpolate_of_a_constant_is_the_constant() -> None:
    x = random_positions(100, dtype=np.float32)
    np.testing.assert_allclose(
        interpolate(np.full((8, 8, 8), 3.5), x, BOX, "tsc"), 3.5, rtol=1e-14
    )


def test_interpolate_rejects_a_mesh_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="mesh must be a cubic array"):
        interpolate(np.zeros((8, 8, 4)), random_positions(5), BOX)


@pytest.mark.parametrize(("scheme", "p"), [("ngp", 1), ("cic", 2), ("tsc", 3)])
def test_window_is_sinc_to_the_kernel_order(scheme: str, p: int) -> None:
    n = 16
    window = assignment_window(n, scheme)
    assert window.shape == (n, n, n // 2 + 1)
    assert window[0, 0, 0] == 1.0
    # k_x at Nyquist: sinc(π/2) = 2/π
    assert window[n // 2, 0, 0] == pytest.approx((2 / np.pi) ** p, rel=1e-14)
    m = np.array([3, 5, 2])
    expected = np.prod(np.sin(np.pi * m / n) / (np.pi * m / n)) ** p
    assert window[3, -5, 2] == pytest.approx(expected, rel=1e-14)
    wx, wy, wz = window_factors(n, scheme)
    np.testing.assert_array_equal(wx * wy * wz, window)


def test_overdensity_has_zero_mean() -> None:
    grid = deposit(random_positions(3000), BOX, 8)
    delta = overdensity(grid)
    assert delta.mean() == pytest.approx(0.0, abs=1e-14)
    np.testing.assert_allclose(delta, grid / grid.mean() - 1, rtol=1e-14)
    with pytest.raises(ValueError, match="positive mean"):
        overdensity(np.zeros((4, 4, 4)))
