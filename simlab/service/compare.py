"""``simlab.compare``: P(k) of runs of different codes, and their ratio to one of them.

Every snapshot is measured with the same estimator (simlab's
:func:`~simlab.analysis.power.power_spectrum`: one mesh, one assignment scheme,
interlacing, the window divided out, shot noise kept), so the ratios show the
codes' differences, not the estimators'. Runs started from the same simlab
particle set (same cosmology, box and ICs section, simlab-made ICs) differ only by
their solvers; a cheap PM run then previews an expensive Gadget4 or CONCEPT run
mode by mode.

Codes write outputs at slightly different times (Gadget4 at its sync points,
CONCEPT and PM exactly): outputs are paired with the reference run's at the
nearest time within a tolerance in a, each pair's offset is reported, and
``rescale=True`` brings every paired spectrum to the reference time with the
linear growth D². An output that cannot be paired is left out with a warning
that names it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from simlab.errors import SimlabWarning
from simlab.service.run import Run

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

    from simlab.config import Cosmology

#: Default largest relative difference in a of two outputs that are paired.
A_TOLERANCE = 0.02


class Comparison(NamedTuple):
    """What :func:`compare` returns: the numbers and the figure drawing them."""

    dataset: xr.Dataset
    figure: Figure


def _as_runs(runs: Any) -> dict[str, Run]:
    """{label: Run} from Runs or run-directory paths, in a list or a mapping."""
    if isinstance(runs, Mapping):
        items = list(runs.items())
    elif isinstance(runs, Sequence) and not isinstance(runs, str):
        items = [(None, r) for r in runs]
    else:
        raise TypeError(
            "runs must be a list or a {label: run} mapping, got "
            f"{type(runs).__name__}"
        )
    out: dict[str, Run] = {}
    for label, item in items:
        run = item if isinstance(item, Run) else Run(Path(item))
        name = str(label) if label is not None else run.config.code.engine
        base, number = name, 2
        while name in out:
            name, number = f"{base}-{number}", number + 1
        out[name] = run
    if len(out) < 2:
        raise ValueError(f"compare needs at least two runs, got {len(out)}")
    return out


def _ic_key(run: Run) -> str:
    """What fixes a run's initial particles; equal keys mean the same particles."""
    data = run.config.model_dump(mode="json")
    made_by = "simlab"  # from the seed or from ics.file, the same for every code
    options = run.config.code.options
    if options.get("initial_conditions") == "concept":
        made_by = "concept"
    if options.get("ics") == "ngenic":
        made_by = "ngenic"
    return json.dumps(
        {k: data[k] for k in ("cosmology", "box", "ics")} | {"made_by": made_by},
        sort_keys=True,
    )


def snapshot_time(path: Path) -> float:
    """Scale factor of a snapshot of any code simlab reads (header only)."""
    import xarray as xr

    from simlab.io import concept, gadget_binary

    if concept.is_concept_snapshot(path) or gadget_binary.snapformat(path):
        return concept.read_time(path)
    with xr.open_dataset(path, engine="gadget4", group="PartType1") as ds:
        return float(ds.attrs["Time"])


def snapshot_positions(path: Path) -> tuple[np.ndarray, float]:
    """Comoving positions in Mpc/h and the box side, from any code's snapshot."""
    import xarray as xr

    from simlab.io import concept, gadget_binary

    if concept.is_concept_snapshot(path) or gadget_binary.snapformat(path):
        particles = concept.read_particles(path)
        return np.asarray(particles.positions), float(particles.box_size)
    with xr.open_dataset(path, engine="gadget4", group="PartType1") as ds:
        scale = (
            1e-3
            if str(ds.Coordinates.attrs.get("units", "")).startswith("kpc")
            else 1.0
        )
        return ds.Coordinates.to_numpy() * scale, float(ds.attrs["BoxSize"]) * scale


class _Output(NamedTuple):
    """One snapshot of one run: its index, file and time."""

    index: int
    path: Path
    a: float


def _pairs(
    reference: list[_Output], other: list[_Output], tolerance: float
) -> dict[int, _Output]:
    """{reference index: other output}, each output used once, closest first,
    only where |a_other / a_reference - 1| <= tolerance."""
    close = sorted(
        (abs(o.a / r.a - 1), r.index, o.index)
        for r in reference
        for o in other
        if abs(o.a / r.a - 1) <= tolerance
    )
    by_index = {o.index: o for o in other}
    paired: dict[int, _Output] = {}
    used: set[int] = set()
    for _, ref, out in close:
        if ref not in paired and out not in used:
            paired[ref] = by_index[out]
            used.add(out)
    return paired


def _pair_outputs(
    outputs: dict[str, list[_Output]], reference: str, tolerance: float
) -> list[dict[str, _Output]]:
    """One {label: output} per reference output every run can pair; a warning
    naming each output left out."""
    pairs = {
        label: _pairs(outputs[reference], outs, tolerance)
        for label, outs in outputs.items()
    }
    kept = [r for r in outputs[reference] if all(r.index in p for p in pairs.values())]
    used = {(label, pairs[label][r.index].index) for r in kept for label in pairs}
    for label, outs in outputs.items():
        for out in outs:
            if (label, out.index) in used:
                continue
            if label == reference:
                lacking = [lab for lab, p in pairs.items() if out.index not in p]
                why = f"{', '.join(lacking)} has no output"
            else:
                why = f"{reference} (the reference) has no free output"
            warnings.warn(
                f"{label}: output {out.index} ({out.path.name}, a={out.a:.6g}) left "
                f"out: {why} within {tolerance:.3g} of a={out.a:.6g} in a",
                SimlabWarning,
                stacklevel=3,
            )
    return [{label: pairs[label][r.index] for label in outputs} for r in kept]


def _growth_squared(a_to: float, a_from: float, cosmo: Cosmology) -> float:
    """(D(a_to) / D(a_from))²: what linear growth does to P(k) between two times."""
    from simlab.cosmology import growth_factor

    return float(growth_factor(a_to, cosmo) / growth_factor(a_from, cosmo)) ** 2


def compare(
    runs: Sequence[Run | str | Path] | Mapping[str, Run | str | Path],
    *,
    reference: str | None = None,
    a_tolerance: float = A_TOLERANCE,
    rescale: bool = False,
    n_mesh: int | None = None,
    scheme: str = "tsc",
    interlace: bool = True,
    k_bins: np.ndarray | None = None,
) -> Comparison:
    """Measure every run's P(k) at paired output times, and ratios to one run.

    Parameters
    ----------
    runs : list or {label: run}
        :class:`~simlab.service.run.Run` objects or run directories; labels default
        to the engine names (``pm``, ``concept``, ``concept-2`` …)
    reference : str, optional
        label the ratios divide by and whose output times the others are paired
        with (default: the first run)
    a_tolerance : float
        largest relative difference in a of two paired outputs (default 0.02);
        each reference output is paired with the nearest output of every other
        run inside it, no output twice
    rescale : bool
        multiply each paired P(k) by D(a_reference)² / D(a_output)² (linear
        growth of the run's own cosmology), so outputs a little off the reference
        time compare at it; exact on linear scales only
    n_mesh : int, optional
        mesh points per side of the measurement (default: the smallest
        ``config.mesh`` of the runs, so no run is measured beyond its own mesh)
    scheme, interlace, k_bins
        assignment scheme, interlacing and bin edges (h/Mpc) of
        :func:`simlab.analysis.power.power_spectrum`; pass a code's own bins
        (e.g. ``k_edges_*`` of :func:`simlab.io.concept.read_powerspec`) to
        compare with that code's P(k) files bin by bin

    Returns
    -------
    Comparison
        ``dataset`` with ``power`` and ``ratio`` over (run, a, k), where ``a`` is
        the reference run's output time; ``a_output`` and ``offset``
        (a_output / a - 1) over (run, a) say which output of each run was paired
        and how far off it is, ``growth_rescale`` the factor applied (1 without
        ``rescale``); coordinates ``engine`` (run), ``n_modes`` (k); attrs
        ``reference``, ``a_tolerance``, ``rescaled``, ``n_mesh``, ``scheme``,
        ``same_ics``. ``figure`` has P(k) above and the ratios below.

    Warns
    -----
    SimlabWarning
        for every output left out because no partner lies within ``a_tolerance``
        (naming the run, the output and its time); and when the runs do not
        start from the same particles: their ratios then include cosmic
        variance, not only the codes' differences.
    """
    import xarray as xr

    from simlab.analysis.power import power_spectrum

    labelled = _as_runs(runs)
    reference = reference or next(iter(labelled))
    if reference not in labelled:
        raise ValueError(
            f"reference={reference!r} is not one of the runs: {', '.join(labelled)}"
        )
    if not 0 <= a_tolerance < 1:
        raise ValueError(f"a_tolerance={a_tolerance!r}: allowed is a number in [0, 1)")
    configs = {label: run.config for label, run in labelled.items()}
    sizes = {label: c.box.size for label, c in configs.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"the runs' boxes differ (box.size in Mpc/h: {sizes})")
    same_ics = len({_ic_key(run) for run in labelled.values()}) == 1
    if not same_ics:
        warnings.warn(
            "the runs do not start from the same particles (cosmology, box or ics "
            "differ, or CONCEPT made its own ICs): ratios include cosmic variance",
            SimlabWarning,
            stacklevel=2,
        )
    n_mesh = n_mesh or min(c.mesh for c in configs.values())
    snapshots = {label: run.snapshots for label, run in labelled.items()}
    missing = [label for label, snaps in snapshots.items() if not snaps]
    if missing:
        raise ValueError(f"run(s) {', '.join(missing)} have no snapshots to measure")
    outputs = {
        label: [_Output(i, p, snapshot_time(p)) for i, p in enumerate(snaps)]
        for label, snaps in snapshots.items()
    }
    paired = _pair_outputs(outputs, reference, a_tolerance)
    if not paired:
        times = {label: [o.a for o in outs] for label, outs in outputs.items()}
        raise ValueError(
            f"the runs have no output times within {a_tolerance:.3g} in a of each "
            f"other: {times}"
        )
    common = [pair[reference].a for pair in paired]
    spectra: dict[str, list[xr.DataArray]] = {}
    factors: dict[str, list[float]] = {}
    for label in labelled:
        spectra[label], factors[label] = [], []
        for a, pair in zip(common, paired, strict=True):
            out = pair[label]
            factor = (
                _growth_squared(a, out.a, configs[label].cosmology) if rescale else 1.0
            )
            positions, box = snapshot_positions(out.path)
            size = configs[label].box.size
            if not np.isclose(box, size, rtol=1e-6, atol=0):
                raise ValueError(
                    f"{out.path}: the snapshot's box is {box:g} Mpc/h, the run's "
                    f"box.size {size:g}"
                )
            # one box for all: a box converted from Mpc (CONCEPT) is a rounding off
            # and would give k coordinates that do not align with the others'
            spectrum = power_spectrum(
                positions,
                size,
                n_mesh,
                scheme=scheme,
                interlace=interlace,
                k_bins=k_bins,
            )
            spectra[label].append(spectrum.copy(data=spectrum.to_numpy() * factor))
            factors[label].append(factor)
    power = xr.concat(
        [xr.concat(s, dim="a", coords="minimal") for s in spectra.values()],
        dim="run",
        coords="minimal",
        compat="override",
    )
    power = power.assign_coords(
        run=list(spectra),
        a=common,
        engine=("run", [configs[label].code.engine for label in spectra]),
    )
    a_output = xr.DataArray(
        [[pair[label].a for pair in paired] for label in spectra],
        dims=("run", "a"),
        coords={"run": list(spectra), "a": common},
        attrs={"long_name": "time of the paired output"},
    )
    dataset = xr.Dataset(
        {
            "power": power,
            "ratio": power / power.sel(run=reference),
            "a_output": a_output,
            "offset": (a_output / a_output["a"] - 1).assign_attrs(
                long_name="a_output / a - 1", units="1"
            ),
            "growth_rescale": (("run", "a"), [factors[label] for label in spectra]),
        },
        attrs={
            "reference": reference,
            "a_tolerance": a_tolerance,
            "rescaled": int(rescale),
            "n_mesh": n_mesh,
            "scheme": scheme,
            "interlaced": int(interlace),
            "shot_noise_subtracted": 0,
            "same_ics": int(same_ics),
        },
    )
    dataset["ratio"].attrs = {"long_name": f"P / P_{reference}", "units": "1"}
    return Comparison(dataset, _figure(dataset))


def _figure(dataset: xr.Dataset) -> Figure:
    """P(k) of every run and time above, ratios to the reference below."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 6.0), layout="constrained")
    main, lower = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 2)})
    styles = ["-", "--", ":", "-."]
    reference = dataset.attrs["reference"]
    k = dataset["k"].to_numpy()
    for i, label in enumerate(dataset["run"].to_numpy()):
        colour = f"C{i}"
        for j, a in enumerate(dataset["a"].to_numpy()):
            style = styles[j % len(styles)]
            name = f"{label}, a={float(dataset['a_output'].sel(run=label, a=a)):.4g}"
            main.loglog(
                k, dataset["power"].sel(run=label, a=a), style, color=colour, label=name
            )
            if label != reference:
                lower.semilogx(
                    k, dataset["ratio"].sel(run=label, a=a), style, color=colour
                )
    lower.axhline(1.0, color="0.5", linewidth=0.8)
    main.set_ylabel("P(k) [(Mpc/h)³]")
    rescaled = ", rescaled by D² to the reference times" * dataset.attrs["rescaled"]
    main.set_title(f"power spectra, {dataset.attrs['n_mesh']}³ mesh{rescaled}")
    main.legend(fontsize="small")
    lower.set_xlabel("k [h/Mpc]")
    lower.set_ylabel(f"P / P_{reference}")
    return fig
