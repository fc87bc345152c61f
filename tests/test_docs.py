"""Every code block of README.md and docs/ that a user would paste, executed.

Python blocks of one page run in order in one interpreter (as pasted into one
notebook), in a fresh folder with its own run root; shell blocks run with bash
there. A block preceded by ``<!-- skip-test -->`` is not run: installs, root-only
commands and code that needs a real Gadget4 or a group space. ``PAGES`` says what
a page's examples assume to exist: a folder laid out as simlab writes it (copied
from tests/data) and the names its text leaves to the reader (``path``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
BLOCK = re.compile(
    r"(?P<skip><!-- skip-test -->\n)?^```(?P<lang>python|bash|console|sh)\n"
    r"(?P<code>.*?)^```",
    re.S | re.M,
)
#: Markdown link targets: ](path) without a scheme or an anchor-only target.
LINK = re.compile(r"\]\((?!https?://|mailto:|#)(?P<target>[^)\s#]+)")
#: A relative path climbing out of its folder anywhere in a text (prose, code
#: spans, commands), not one inside an expression (`{dir}/../output`) or an
#: ellipsis (`.../snapshot`).
CLIMB = re.compile(r"(?<![\w./}$])(?P<path>(?:\.\./)+[^\s`'\")\]>,;:]*)")
RUNNER = """
import json, sys
namespace = {"__name__": "__main__"}
exec(sys.argv[2], namespace)
for where, code in json.load(open(sys.argv[1])):
    print("--- running", where, flush=True)
    exec(compile(code, where, "exec"), namespace)
"""


@dataclass(frozen=True)
class Page:
    """What a page's examples take for granted."""

    folder: str | None = None  # copied from tests/data as the working folder
    prelude: str = ""  # names the text leaves to the reader
    extra: tuple[tuple[str, str], ...] = ()  # (tests/data file, name in folder)
    setup: Callable[[Path], None] | None = None  # prepares the working folder


def _join_pieces(pieces: list[Path], target: Path) -> None:
    """The file Gadget4 writes with one file per output, from a multi-file output.

    Datasets are concatenated in file order (Gadget4's offsets are global), and
    the header's per-file counts become the totals.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    parts: dict[str, list[np.ndarray]] = {}
    with h5py.File(target, "w") as out:
        for piece in pieces:
            with h5py.File(piece, "r") as f:

                def visit(name: str, obj, f=f) -> None:
                    if isinstance(obj, h5py.Group) and name not in out:
                        out.create_group(name).attrs.update(obj.attrs)
                    elif isinstance(obj, h5py.Dataset):
                        parts.setdefault(name, []).append(obj[...])

                out.attrs.update(f.attrs)
                f.visititems(visit)
        with h5py.File(pieces[0], "r") as first:
            for name, arrays in parts.items():
                data = out.create_dataset(name, data=np.concatenate(arrays))
                if name in first:
                    data.attrs.update(first[name].attrs)
        header = out["Header"].attrs
        for this in ("NumPart", "Ngroups", "Nsubhalos", "Nids"):
            if f"{this}_ThisFile" in header:
                header[f"{this}_ThisFile"] = header[f"{this}_Total"]
        for key in ("NumFilesPerSnapshot", "NumFiles"):
            if key in header:
                header[key] = np.int32(1)


def _ngenic32_output_3_as_single_files(work: Path) -> None:
    """Output 3 of the ngenic32 run (64 halos) as simlab's default layout."""
    run = DATA / "gadget4-small" / "ngenic32" / "output"
    out = work / "output"
    _join_pieces(
        sorted((run / "snapdir_003").glob("*.hdf5")), out / "snapshot_003.hdf5"
    )
    _join_pieces(
        sorted((run / "groups_003").glob("*.hdf5")), out / "fof_subhalo_tab_003.hdf5"
    )
    (out / "powerspecs").mkdir()
    shutil.copy(run / "powerspecs" / "powerspec_003.txt", out / "powerspecs")


PAGES = {
    "docs/analysis.md": Page(
        prelude=f"path = {str(DATA / 'gadget4-small/ngenic32/output/snapdir_003')!r}\n"
        "import simlab\n"
        "run = simlab.run(simlab.RunConfig(box={'size': 64.0, 'particles_per_side':"
        " 32}, gravity={'steps': 20}), progress=False)"
    ),
    "docs/ics-file.md": Page(folder="gadget4-small"),
    "docs/codes/gadget4.md": Page(setup=_ngenic32_output_3_as_single_files),
    "docs/codes/concept.md": Page(
        folder="concept-small/concept32",
        prelude="path = 'output/snapshot_a=1.00.hdf5'",
        # a run with snapshot_type = 'gadget' writes its snapshots there
        extra=(
            (
                "concept-small/concept32/output_gadget/snapshot_a=1.00",
                "output/snapshot_a=1.00",
            ),
        ),
    ),
    "docs/linear-theory.md": Page(
        extra=(("linear/class_planck18_tk.dat", "class_00_tk.dat"),)
    ),
}


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _blocks(page: Path) -> list[tuple[str, str, str]]:
    """``(where, language, code)`` of the blocks to run, in page order."""
    text = page.read_text()
    found = []
    for match in BLOCK.finditer(text):
        if match["skip"]:
            continue
        line = text.count("\n", 0, match.start("code")) + 1
        where = f"{page.relative_to(ROOT)}:{line}"
        lang = "python" if match["lang"] == "python" else "bash"
        found.append((where, lang, match["code"]))
    return found


RUNNABLE = [p.relative_to(ROOT).as_posix() for p in _pages() if _blocks(p)]


@pytest.mark.slow
@pytest.mark.parametrize("name", RUNNABLE)
def test_page_examples_run(name, tmp_path):
    page = PAGES.get(name, Page())
    work = tmp_path / "work"
    if page.folder:
        shutil.copytree(DATA / page.folder, work)
    work.mkdir(exist_ok=True)
    for source, target in page.extra:
        (work / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / source, work / target)
    if page.setup is not None:
        page.setup(work)
    env = {
        **os.environ,
        "DASK_SIMLAB__RUN_ROOT": str(tmp_path / "runs"),
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
        ),
    }
    blocks = _blocks(ROOT / name)
    python = [(where, code) for where, lang, code in blocks if lang == "python"]
    if python:
        script = tmp_path / "blocks.json"
        script.write_text(json.dumps(python))
        _check(
            [sys.executable, "-c", RUNNER, str(script), page.prelude], work, env, name
        )
    for where, _, code in (b for b in blocks if b[1] == "bash"):
        _check(["bash", "-euo", "pipefail", "-c", code], work, env, where)


def _check(argv: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, (
        f"{what}: the example fails as a user would paste it\n"
        f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    )


def _doc_texts() -> list[Path]:
    """Every text a reader is given: the pages and the files docs/ ships beside
    them (examples), not its images."""
    extra = [p for p in sorted((ROOT / "docs").rglob("*")) if p.suffix in {".py"}]
    return [*_pages(), *extra]


@pytest.mark.parametrize(
    "page", _doc_texts(), ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_links_stay_in_the_repository(page):
    text = page.read_text()
    assert "shared/fixtures" not in text
    for match in LINK.finditer(text):
        target = (page.parent / match["target"]).resolve()
        assert target.is_relative_to(ROOT), f"{page.name}: {match['target']}"
        assert target.exists(), f"{page.name}: link to missing {match['target']}"
    for match in CLIMB.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        where = f"{page.relative_to(ROOT)}:{line}: {match['path']}"
        target = (page.parent / match["path"]).resolve()
        assert target.is_relative_to(ROOT), f"{where} leaves the repository"
        assert target.exists(), f"{where} names nothing in the repository"


@pytest.mark.parametrize(
    "text, found",
    [
        (
            "from the card (`../shared/DESIGN.md` in another repo)",
            "../shared/DESIGN.md",
        ),
        ("see ../../elsewhere/notes.md.", "../../elsewhere/notes.md."),
        ("cd ../other && make", "../other"),
        ("`f'{param.dir}/../output'` and [.../snapshot_000.hdf5]", None),
    ],
)
def test_a_path_climbing_out_is_found_anywhere_in_a_text(text, found):
    match = CLIMB.search(text)
    assert (match and match["path"]) == found
