"""Gadget4's output file names: the one table the readers and the engines share.

Gadget4 numbers its outputs ``%03d``. With ``NumFilesPerSnapshot 1`` (simlab's
default) an output is one file, ``output/snapshot_001.hdf5``; with more it is a
folder of pieces, ``output/snapdir_001/snapshot_001.0.hdf5`` …; FOF/Subfind
catalogues follow the same rule as ``fof_subhalo_tab`` in ``groups_NNN``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OutputKind:
    """One kind of numbered output: its file stem and its multi-file folder, what
    it is called in messages, and the Header attribute with its number of pieces."""

    stem: str
    folder: str
    what: str
    count_key: str

    @property
    def layout(self) -> tuple[str, str, str]:
        """``(what, glob of piece 0, count_key)``, as ``output_files`` takes them:
        ``fof_subhalo_tab_*.0.hdf5`` finds piece 0 in a ``groups_NNN`` folder."""
        return (self.what, f"{self.stem}_*.0.hdf5", self.count_key)

    def single(self, number: int) -> str:
        """Name of the one-file output: ``snapshot_001.hdf5``."""
        return f"{self.stem}_{number:03d}.hdf5"

    def find(self, output: str | Path) -> dict[int, Path]:
        """``{number: path}`` of every output in ``output``, sorted by number;
        the path is the single file, else the first piece of the folder."""
        output = Path(output)
        paths = [
            *output.glob(f"{self.folder}_*/{self.stem}_*.0.hdf5"),
            *output.glob(f"{self.stem}_*.hdf5"),
        ]
        names = [path.relative_to(output).as_posix() for path in paths]
        return {number: output / name for number, name in self.among(names).items()}

    def among(self, names: Iterable[str]) -> dict[int, str]:
        """``{number: name}`` of the outputs among ``names`` (POSIX paths relative
        to an output folder, as a listing or a published run's record gives them),
        sorted by number: the single file, else the first piece of the folder."""
        stem, folder = re.escape(self.stem), re.escape(self.folder)
        single = re.compile(rf"^{stem}_(\d{{3,}})\.hdf5$")
        piece = re.compile(rf"^{folder}_[^/]*/{stem}_(\d{{3,}})\.0\.hdf5$")
        found: dict[int, str] = {}
        for name in names:
            match = single.match(name) or piece.match(name)
            if match:
                found[int(match[1])] = name
        return dict(sorted(found.items()))


SNAPSHOT = OutputKind("snapshot", "snapdir", "snapshot", "NumFilesPerSnapshot")
GROUP_CATALOGUE = OutputKind("fof_subhalo_tab", "groups", "group catalogue", "NumFiles")
