"""``simlab.compare``: P(k) of runs of different codes, and their ratio to one of them.

Every snapshot is measured with the same estimator (simlab's
:func:`~simlab.analysis.power.power_spectrum`: one mesh, one assignment scheme,
interlacing, the window divided out, shot noise kept), so the ratios show the
codes' differences, not the estimators'. Runs started from the same simlab
particle set (same cosmology, box and ICs section, simlab-made ICs) differ only by
their solvers; a cheap PM run then previews an expensive Gadget4 or CONCEPT run
mode by mode.
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

#: Relative tolerance for two runs' output times to count as the same time.
A_RTOL = 1e-6


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
    made_by = "simlab"
    if run.config.code.options.get("initial_conditions") == "concept":
        made_by = "concept"
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


def _common_times(times: dict[str, list[float]]) -> list[float]:
    """Output times every run has (taken from the first run), sorted."""
    first, *others = times.values()
    return sorted(
        a
        for a in first
        if all(any(np.isclose(a, b, rtol=A_RTOL, atol=0) for b in t) for t in others)
    )


def compare(
    runs: Sequence[Run | str | Path] | Mapping[str, Run | str | Path],
    *,
    reference: str | None = None,
    n_mesh: int | None = None,
    scheme: str = "tsc",
    interlace: bool = True,
    k_bins: np.ndarray | None = None,
) -> Comparison:
    """Measure every run's P(k) at their common output times, and ratios to one.

    Parameters
    ----------
    runs : list or {label: run}
        :class:`~simlab.service.run.Run` objects or run directories; labels default
        to the engine names (``pm``, ``concept``, ``concept-2`` …)
    reference : str, optional
        label the ratios divide by (default: the first run)
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
        ``dataset`` with ``power`` and ``ratio`` over (run, a, k), coordinates
        ``engine`` (run), ``n_modes`` (k), attrs ``reference``, ``n_mesh``,
        ``scheme``, ``same_ics``; ``figure`` with P(k) above and the ratios below.

    Warns
    -----
    SimlabWarning
        when the runs do not start from the same particles: their ratios then
        include cosmic variance, not only the codes' differences.
    """
    import xarray as xr

    from simlab.analysis.power import power_spectrum

    labelled = _as_runs(runs)
    reference = reference or next(iter(labelled))
    if reference not in labelled:
        raise ValueError(
            f"reference={reference!r} is not one of the runs: {', '.join(labelled)}"
        )
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
    times = {
        label: [snapshot_time(p) for p in snaps] for label, snaps in snapshots.items()
    }
    common = _common_times(times)
    if not common:
        raise ValueError(f"the runs have no output time in common: {times}")
    spectra: dict[str, list[xr.DataArray]] = {}
    for label, snaps in snapshots.items():
        spectra[label] = []
        for a in common:
            index = int(np.argmin([abs(t - a) for t in times[label]]))
            positions, box = snapshot_positions(snaps[index])
            spectra[label].append(
                power_spectrum(
                    positions,
                    box,
                    n_mesh,
                    scheme=scheme,
                    interlace=interlace,
                    k_bins=k_bins,
                )
            )
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
    dataset = xr.Dataset(
        {"power": power, "ratio": power / power.sel(run=reference)},
        attrs={
            "reference": reference,
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
            name = f"{label}, a={a:.3g}"
            main.loglog(
                k, dataset["power"].sel(run=label, a=a), style, color=colour, label=name
            )
            if label != reference:
                lower.semilogx(
                    k, dataset["ratio"].sel(run=label, a=a), style, color=colour
                )
    lower.axhline(1.0, color="0.5", linewidth=0.8)
    main.set_ylabel("P(k) [(Mpc/h)³]")
    main.set_title(f"power spectra, {dataset.attrs['n_mesh']}³ mesh")
    main.legend(fontsize="small")
    lower.set_xlabel("k [h/Mpc]")
    lower.set_ylabel(f"P / P_{reference}")
    return fig
