"""``python -m benchmarks.time_viewer [N]``: how fast the InteractiveViewer redraws.

Opens :class:`simlab.widgets.InteractiveViewer` on a clustered N_SIDE³ snapshot
(default 256³, :func:`benchmarks._data.snapshot`, written once into the bench data
folder) and prints the seconds of each step a user takes: opening (reading the
positions, the density at each particle, the first map, P(k) measured from the
particles as no run wrote one), then each redraw: moving the slab, thickening it,
zooming 4, 16 and 64 times, panning, another axis, 512 pixels. Each redraw is the
viewer's own ``render_seconds`` (particles to drawn figure), the best of three.
These numbers are the ones docs/widgets.md quotes.
"""

from __future__ import annotations

import sys
import time


def main(n_side: int = 256) -> None:
    from benchmarks._data import BOX_SIZE, snapshot
    from simlab.widgets.interactive import InteractiveViewer

    path = snapshot(n_side, 1)
    started, cpu = time.perf_counter(), time.process_time()
    viewer = InteractiveViewer(path)
    opened = time.perf_counter() - started
    opened_cpu = time.process_time() - cpu
    rows = viewer.image_array.shape
    print(f"{n_side}³ particles, box {BOX_SIZE:g} Mpc/h, map {rows[1]}×{rows[0]}")
    print(
        f"open (read, density, first map, P(k)): {opened:.2f} s wall, "
        f"{opened_cpu:.2f} s CPU"
    )

    def step(label: str, action) -> None:
        """Best of three: the viewer's render_seconds (wall) and CPU seconds."""
        walls, cpus = [], []
        for _ in range(3):
            cpu = time.process_time()
            action()
            cpus.append(time.process_time() - cpu)
            walls.append(viewer.render_seconds)
        shape = viewer.image_array.shape
        print(
            f"{label}: {min(walls):.3f} s wall, {min(cpus):.3f} s CPU "
            f"({shape[1]}×{shape[0]} pixels)"
        )

    box = BOX_SIZE
    thin = box / 32
    viewer.thickness.value = thin
    positions = viewer._particles(path)[0]
    depth = positions[:, 2]
    cpu = time.process_time()
    for _ in range(3):
        inside = (depth >= box / 2 - thin / 2) & (depth < box / 2 + thin / 2)
        positions[inside]
    print(
        f"slab mask and gather alone ({int(inside.sum()):,} particles): "
        f"{(time.process_time() - cpu) / 3:.3f} s CPU"
    )
    step(
        "move the slab",
        lambda: setattr(viewer.centre, "value", viewer.centre.value + box / 64),
    )
    step(
        "thicker slab (1/4 box)",
        lambda: (
            setattr(viewer.thickness, "value", box / 8),
            setattr(viewer.thickness, "value", box / 4),
        ),
    )
    viewer.thickness.value = thin
    for factor in (4, 16, 64):
        width = box / factor
        step(
            f"zoom {factor}×",
            lambda w=width: viewer.zoom((box / 3, box / 3 + w), (box / 3, box / 3 + w)),
        )
    width = box / 16
    viewer.zoom((box / 3, box / 3 + width), (box / 3, box / 3 + width))
    step(
        "pan (16× zoom)",
        lambda: viewer.zoom(
            (viewer.view[0][0] + width / 4, viewer.view[0][1] + width / 4),
            (box / 3, box / 3 + width),
        ),
    )
    viewer.reset()
    step(
        "axis x (whole box)",
        lambda: (
            setattr(viewer.axis, "value", "y"),
            setattr(viewer.axis, "value", "x"),
        ),
    )
    step(
        "512 pixels",
        lambda: (
            setattr(viewer.resolution, "value", 256),
            setattr(viewer.resolution, "value", 512),
        ),
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 256)
