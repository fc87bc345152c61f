"""Every code block of README.md and docs/ that a user would paste, executed.

Python blocks of one page run in order in one interpreter (as pasted into one
notebook), in a fresh folder with its own run root; shell blocks run with bash
there. A ``console`` block whose lines start with ``$ `` is a transcript: each
command runs in turn and the output shown under it is compared loosely with what
it prints (see :func:`_compare`). ``yaml`` blocks of cluster profiles are parsed
and validated as simlab validates a profile at submission. A block preceded by
``<!-- skip-test: reason -->`` is not run: installs, root-only commands and code
that needs a real Gadget4, a group space or object-storage credentials.
``PAGES`` says what a page's examples assume to exist: a folder laid out as simlab
writes it (copied from tests/data) and the names its text leaves to the reader
(``path``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dask
import h5py
import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
BLOCK = re.compile(
    r"(?P<skip><!-- skip-test(?::(?P<why>[^>]*))? -->\n)?"
    r"^(?P<indent> *)```(?P<lang>python|bash|console|sh|yaml)\n"
    r"(?P<code>.*?)^(?P=indent)```",
    re.S | re.M,
)
#: A transcript's command line.
PROMPT = "$ "
#: Commands a transcript may run again until their output shows what the page
#: shows (a status read while the run is in progress): they only read.
REPEATABLE = ("simlab status ", "simlab ls")
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


def _blocks(page: Path, skipped: bool = False) -> list[tuple[str, str, str]]:
    """``(where, language, code)`` of the blocks to run, in page order: python,
    bash (shell and console blocks), transcript (console blocks of ``$`` lines)
    or yaml; with ``skipped``, those marked skip-test instead, with the reason."""
    text = page.read_text()
    found = []
    for match in BLOCK.finditer(text):
        if bool(match["skip"]) != skipped:
            continue
        line = text.count("\n", 0, match.start("code")) + 1
        where = f"{page.relative_to(ROOT)}:{line}"
        code = textwrap.dedent(match["code"])
        lang = match["lang"]
        if lang in ("console", "sh"):
            lang = "transcript" if code.startswith(PROMPT) else "bash"
        if skipped:
            lang = (match["why"] or "").strip()
        found.append((where, lang, code))
    return found


RUNNABLE = [
    p.relative_to(ROOT).as_posix()
    for p in _pages()
    if any(lang != "yaml" for _, lang, _ in _blocks(p))
]


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
        # the commands of this environment (simlab), as an activated venv has them
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
        ),
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
    for where, _, code in (b for b in blocks if b[1] == "transcript"):
        _replay(where, code, work, env)


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


def _steps(code: str) -> list[tuple[str, list[str]]]:
    """A transcript's ``(command, shown output lines)``, in order."""
    steps: list[tuple[str, list[str]]] = []
    for line in code.splitlines():
        if line.startswith(PROMPT):
            steps.append((line.removeprefix(PROMPT), []))
        elif line.strip():
            steps[-1][1].append(line)
    return steps


def _varies(word: str) -> bool:
    """Whether a shown word is one that differs from run to run or machine to
    machine: ids, times and numbers have digits, paths a slash."""
    return "/" in word or any(c.isdigit() for c in word)


def _compare(shown: list[str], output: str) -> tuple[list[str], dict[str, str]]:
    """The shown lines that ``output`` lacks, and what the words that vary stand
    for in it (shown word → printed word).

    A shown ``field: value`` line needs a printed line starting with that field
    (the value may be another state, host or time); a line that is one integer
    (an exit status) needs that integer on a line; any other line needs its words
    in that order in the output (columns a terminal would show side by side may
    be printed one a line), each word with a digit or a slash (an id, a number,
    a path) standing for any word.
    """
    printed = output.splitlines()
    missing: list[str] = []
    found: dict[str, str] = {}
    after = 0  # shown lines come in the order printed: look past the last first
    for line in shown:
        words = line.split()
        varying = [w for w in words if _varies(w)]
        pattern = re.compile(
            r"\s+".join(r"(\S+)" if _varies(w) else re.escape(w) for w in words)
        )
        match = pattern.search(output, after) or pattern.search(output)
        if match:
            after = match.end()
            for word, actual in zip(varying, match.groups(), strict=True):
                found.setdefault(word, actual)
        if line.strip().isdigit():
            ok = line.strip() in (p.strip() for p in printed)
        elif len(words) > 1 and words[0].endswith(":") and not _varies(words[0]):
            field = re.compile(rf"^\s*{re.escape(words[0])}(\s|$)")
            ok = any(field.match(p) for p in printed)
        else:
            ok = match is not None
        if not ok:
            missing.append(line)
    return missing, found


def _replay(where: str, code: str, work: Path, env: dict[str, str]) -> None:
    """Run a transcript's commands in turn in ``work``, comparing each one's output
    with the lines shown under it.

    A word with a digit shown in an earlier output (a run id, a path) stands in
    later commands for the word printed in its place. ``$ cat NAME`` with its content
    shown writes NAME first if it does not exist (the file the page asks for). A
    command that fails must be followed by ``echo $?`` showing its status.
    """
    stands_for: dict[str, str] = {}
    status = 0
    steps = _steps(code)
    for index, (command, shown) in enumerate(steps):
        for word in sorted(stands_for, key=len, reverse=True):
            whole = rf"(?<![\w.-]){re.escape(word)}(?![\w.-])"
            command = re.sub(whole, lambda _, w=word: stands_for[w], command)
        name = command.removeprefix("cat ").strip()
        if command.startswith("cat ") and shown and not (work / name).exists():
            (work / name).write_text("\n".join(shown) + "\n")
        argv = ["bash", "-o", "pipefail", "-c", f"(exit {status}); {command} 2>&1"]
        deadline = time.monotonic() + 180
        while True:
            done = subprocess.run(
                argv, cwd=work, env=env, capture_output=True, text=True, timeout=900
            )
            missing, found = _compare(shown, done.stdout)
            if not missing or not command.startswith(REPEATABLE):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        status = done.returncode
        after = steps[index + 1][0] if index + 1 < len(steps) else ""
        assert status == 0 or after == "echo $?", (
            f"{where}: `{command}` exited {status}\n{done.stdout[-3000:]}"
            f"\n{done.stderr[-3000:]}"
        )
        assert not missing, (
            f"{where}: `{command}` printed no line like:\n"
            + "\n".join(missing)
            + f"\n--- it printed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
        )
        for word, actual in found.items():
            if len(word) >= 6 and re.search(r"[a-z]", word):  # ids and paths
                stands_for.setdefault(word, actual)


@pytest.mark.parametrize(
    "shown, output, missing",
    [
        (["state:    running"], "run: x\nstate:    completed\n", []),
        (["estimate: 2 s in all"], "state: running\neta:      3 s left (measured)", 1),
        (["run a-1 completed"], "run b-22 completed\n", []),
        (["run a-1 completed"], "run b-22 failed\n", 1),
        (["2"], "1\n", 1),
        (["RUN  STATE"], "RUN      STATE    ENGINE\n", []),
        (["a.json  log"], "a.json\nlog\n", []),
        (
            ["executed notebook: /home/me/q.ipynb"],
            "executed notebook: /tmp/q.ipynb",
            [],
        ),
    ],
)
def test_a_transcript_line_is_compared_by_its_stable_words(shown, output, missing):
    assert len(_compare(shown, output)[0]) == (missing or 0)
    if shown == ["run a-1 completed"] and not missing:
        assert _compare(shown, output)[1] == {"a-1": "b-22"}


def _profiles() -> list[tuple[str, str, dict]]:
    """``(where, name, profile)`` of every cluster profile in a yaml block."""
    found = []
    for page in _pages():
        for where, lang, code in _blocks(page):
            if lang != "yaml":
                continue
            settings = yaml.safe_load(code)
            assert isinstance(settings, dict) and "simlab" in settings, where
            for name, profile in settings["simlab"].get("clusters", {}).items():
                found.append((where, name, profile))
    return found


@pytest.mark.parametrize(
    "where, name, profile",
    _profiles(),
    ids=[f"{where}-{name}" for where, name, _ in _profiles()],
)
def test_cluster_profiles_of_the_pages_are_valid(where, name, profile, tmp_path):
    """As a submission checks it (kind, job shape, artifacts), and as the
    dispatcher would turn it into batch jobs (the dask-jobqueue class renders a
    job script from every key) or run a code in its container."""
    from simlab.dispatch.dispatcher import Shape, batch_options
    from simlab.dispatch.profiles import (
        cluster_class,
        container_prefix,
        is_batch,
        mpi_launcher,
    )
    from simlab.service.validation import validate_run

    with dask.config.set({"simlab.clusters": {name: profile}}):
        plan = validate_run({}, cluster=name)
    assert plan.profile == profile, where
    assert mpi_launcher(profile, 4), where
    if "container" in profile:
        assert container_prefix(profile)[0] == profile["container"]["runtime"]
    if is_batch(profile["kind"]):
        options = batch_options(profile, "pm", Shape(walltime="01:00:00"), tmp_path)
        job = cluster_class(profile["kind"]).job_cls(
            scheduler="tls://127.0.0.1:8786", name="simlab-doc", **options
        )
        script = job.job_script()
        assert "--resources run=1" in script, where
        assert "--lifetime 3420s" in script, where  # 0.95 of the walltime
        if profile["kind"] == "slurm":
            assert "#SBATCH --nodes=1" in script, where


def test_what_the_pages_leave_untested_says_why():
    """Every skip-test marker gives its reason: what a plain machine lacks."""
    unexplained = [
        where
        for page in _pages()
        for where, why, _ in _blocks(page, skipped=True)
        if not why
    ]
    assert unexplained == []
