"""tests/data is exactly what tests/data/MANIFEST.sha256 lists, byte for byte.

The files under tests/data are real Gadget4 and CONCEPT outputs (see
tests/data/README.md); they must never change. The manifest has the format of
``sha256sum`` (``HASH  relative/path``, sorted by path) and lists every file under
tests/data except itself. After adding or removing a data file on purpose,
regenerate it from the repository's root with::

    python -m tests.test_data_manifest

(tests/data/README.md gives the same with ``sha256sum``) and check it there with
``cd tests/data && sha256sum -c MANIFEST.sha256``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.conftest import DATA

MANIFEST = DATA / "MANIFEST.sha256"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _on_disk() -> list[str]:
    """Every file under tests/data but the manifest, as sorted relative paths."""
    return sorted(
        p.relative_to(DATA).as_posix()
        for p in DATA.rglob("*")
        if (p.is_file() or p.is_symlink()) and p != MANIFEST
    )


def _listed() -> list[tuple[str, str]]:
    """(hash, path) of each manifest line, in file order."""
    entries = []
    for number, line in enumerate(MANIFEST.read_text().splitlines(), 1):
        digest, sep, path = line.partition("  ")
        assert sep and len(digest) == 64 and path, f"line {number}: {line!r}"
        entries.append((digest, path))
    return entries


def write_manifest() -> None:
    """Rewrite the manifest from the files on disk (only after a deliberate change)."""
    lines = [f"{_sha256(DATA / path)}  {path}\n" for path in _on_disk()]
    MANIFEST.write_text("".join(lines))


def test_manifest_is_sorted_and_unique():
    paths = [path for _, path in _listed()]
    assert paths == sorted(paths)
    assert len(paths) == len(set(paths))


def test_every_file_is_listed_and_every_listed_file_exists():
    on_disk, listed = set(_on_disk()), {path for _, path in _listed()}
    assert sorted(on_disk - listed) == [], "not in MANIFEST.sha256"
    assert sorted(listed - on_disk) == [], "listed but missing"


def test_no_symlinks():
    assert [p for p in DATA.rglob("*") if p.is_symlink()] == []


def test_every_hash_matches():
    changed = [
        path
        for digest, path in _listed()
        if (DATA / path).is_file() and _sha256(DATA / path) != digest
    ]
    assert changed == [], "changed since MANIFEST.sha256 was written"


if __name__ == "__main__":
    write_manifest()
    print(f"wrote {MANIFEST}")
