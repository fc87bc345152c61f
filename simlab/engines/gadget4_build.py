"""What a Gadget4 executable was compiled with, and what a run needs of it.

Gadget4 fixes much at compile time (``Config.sh``): the PM mesh, the number of
particle types, group finders, the built-in IC generator, ID width. simlab reads the
options of the user's build from one of three places, all observed on real runs
(``tests/data/gadget4-small``):

- the block the code prints at start-up (``Code was compiled with the following
  settings:`` then one option per line), also printed when the executable is run
  without arguments;
- the ``Config`` group of its snapshots and group catalogues (switches as empty
  strings, valued options as float64);
- the ``Config.sh`` file the build used.

:func:`build_problems` compares them with a :class:`~simlab.config.RunConfig` and
names the ``Config.sh`` lines to add or remove; :func:`config_sh` writes the
``Config.sh`` a run needs, for the user's own build.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simlab.config import RunConfig

#: The header line of the compile-options block in Gadget4's stdout.
CONFIG_BLOCK_START = "Code was compiled with the following settings:"
#: Number of particle types simlab's HDF5 writer uses (arrays of length 6).
SIMLAB_NTYPES = 6
_OPTION_RE = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)(?:=(?P<value>\S+))?$")
_VERSION_RE = re.compile(r"^This is Gadget, version (?P<version>\S+?)\.?$")
_COMMIT_RE = re.compile(r"^Git commit (?P<commit>.+)$")


@dataclass(frozen=True)
class BuildOptions:
    """Compile-time options of one Gadget4 build.

    ``options`` maps each option to its value as text, or None for a switch
    (``FOF``); ``source`` says where they were read (file or executable).
    """

    options: dict[str, str | None]
    source: str = ""
    version: str = ""
    commit: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.options

    def int_value(self, name: str, default: int | None = None) -> int | None:
        """The integer value of a valued option (``PMGRID=64`` → 64), or ``default``."""
        value = self.options.get(name)
        if value is None:
            return default
        return int(float(value))

    @property
    def ntypes(self) -> int:
        """NTYPES (6 when not set, Gadget4's default)."""
        return self.int_value("NTYPES", SIMLAB_NTYPES) or SIMLAB_NTYPES

    @property
    def softening_classes(self) -> int:
        """NSOFTCLASSES, which defaults to NTYPES: one softening class per type."""
        return self.int_value("NSOFTCLASSES", self.ntypes) or self.ntypes

    def lines(self) -> list[str]:
        """The options as ``Config.sh`` lines, sorted."""
        return sorted(k if v is None else f"{k}={v}" for k, v in self.options.items())


def _option(line: str) -> tuple[str, str | None] | None:
    match = _OPTION_RE.match(line.strip())
    if match is None:
        return None
    return match["name"], match["value"]


def parse_config_block(text: str, source: str = "stdout") -> BuildOptions:
    """Read the compile options (and version, commit) from Gadget4's stdout.

    Raises ValueError when the text has no compile-options block.
    """
    options: dict[str, str | None] = {}
    version = commit = ""
    lines = text.splitlines()
    start = None
    for i, line in enumerate(lines):
        if m := _VERSION_RE.match(line.strip()):
            version = m["version"]
        elif m := _COMMIT_RE.match(line.strip()):
            commit = m["commit"].strip()
        elif line.strip() == CONFIG_BLOCK_START:
            start = i + 1
            break
    if start is None:
        raise ValueError(
            f"{source}: no line {CONFIG_BLOCK_START!r}; not the output of Gadget4"
        )
    for line in lines[start:]:
        if not line.strip():
            if options:
                break
            continue
        parsed = _option(line)
        if parsed is None:
            break
        options[parsed[0]] = parsed[1]
    return BuildOptions(options, source=source, version=version, commit=commit)


def read_config_sh(path: str | Path) -> BuildOptions:
    """Read a ``Config.sh``: one option per line, ``#`` starts a comment."""
    path = Path(path)
    options: dict[str, str | None] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parsed = _option(line)
        if parsed is None:
            raise ValueError(
                f"{path}:{number}: {raw.strip()!r} is not a Config.sh option "
                "(NAME or NAME=VALUE)"
            )
        options[parsed[0]] = parsed[1]
    return BuildOptions(options, source=str(path))


def read_config_group(path: str | Path) -> BuildOptions:
    """Read the ``Config`` group of a Gadget4 snapshot or group catalogue."""
    import h5py
    import numpy as np

    path = Path(path)
    options: dict[str, str | None] = {}
    with h5py.File(path, "r") as f:
        if "Config" not in f:
            raise ValueError(f"{path.name}: no Config group (found {sorted(f)})")
        for name, value in f["Config"].attrs.items():
            if isinstance(value, bytes | np.bytes_):
                options[name] = value.decode() or None
            else:
                number = float(np.asarray(value).item())
                options[name] = f"{number:g}"
        header = f["Header"].attrs if "Header" in f else {}
        commit = header.get("Git_commit", b"")
    commit_text = commit.decode() if isinstance(commit, bytes | np.bytes_) else ""
    return BuildOptions(options, source=str(path), commit=commit_text)


#: ``ics`` fields Gadget4's N-GenIC honours only with a compile option.
NGENIC_FIELD_FLAGS = {
    "fixed": "NGENIC_FIX_MODE_AMPLITUDES",
    "paired": "NGENIC_MIRROR_PHASES",
}


def required_options(config: RunConfig) -> dict[str, str | None]:
    """The compile options a run needs, as ``Config.sh`` would list them."""
    options = config.code.options
    needed: dict[str, str | None] = {
        "PERIODIC": None,
        "SELFGRAVITY": None,
        "PMGRID": str(config.mesh),
        "NTYPES": str(SIMLAB_NTYPES),
    }
    if options.get("fof", False) or options.get("subfind", False):
        needed["FOF"] = None
    if options.get("subfind", False):
        needed["SUBFIND"] = None
    if config.outputs.power_spectra:
        needed["POWERSPEC_ON_OUTPUT"] = None
    if options.get("ics", "simlab") == "ngenic":
        needed["NGENIC"] = str(config.mesh)
        if config.ics.lpt_order == 2:
            needed["NGENIC_2LPT"] = None
        needed["CREATE_GRID"] = None
        for name, flag in NGENIC_FIELD_FLAGS.items():
            if getattr(config.ics, name):
                needed[flag] = None
    if config.box.n_particles >= 2**32:
        needed["IDS_64BIT"] = None
    if options.get("double_precision_output", False):
        needed["OUTPUT_IN_DOUBLEPRECISION"] = None
    return needed


def config_sh(config: RunConfig) -> str:
    """The ``Config.sh`` text of a Gadget4 build that can run ``config``.

    Examples
    --------
    >>> from simlab.config import RunConfig
    >>> cfg = RunConfig(box={"particles_per_side": 32}, code={"engine": "gadget4"})
    >>> print(config_sh(cfg))  # doctest: +ELLIPSIS
    # Config.sh written by simlab ... for a 32^3-particle run
    PERIODIC
    SELFGRAVITY
    PMGRID=64
    NTYPES=6
    POWERSPEC_ON_OUTPUT
    """
    from simlab.__about__ import __version__

    lines = [
        f"# Config.sh written by simlab {__version__} for a "
        f"{config.box.particles_per_side}^3-particle run"
    ]
    for name, value in required_options(config).items():
        lines.append(name if value is None else f"{name}={value}")
    return "\n".join(lines)


def write_config_sh(config: RunConfig, path: str | Path) -> Path:
    """Write :func:`config_sh` to ``path`` (the file the user builds Gadget4 with)."""
    path = Path(path)
    path.write_text(config_sh(config) + "\n")
    return path


def build_problems(config: RunConfig, build: BuildOptions) -> list[str]:
    """Why ``build`` cannot run ``config``; empty when it can.

    Each entry says what is wrong and which ``Config.sh`` line to add or remove.
    """
    problems: list[str] = []
    needed = required_options(config)
    for name, value in needed.items():
        have = build.options.get(name) if name in build else None
        if name == "NTYPES":
            if build.ntypes != SIMLAB_NTYPES:
                problems.append(
                    f"NTYPES is {build.ntypes} but simlab's IC files have "
                    f"{SIMLAB_NTYPES} particle types: set NTYPES=6"
                )
        elif name == "PMGRID":
            if "PMGRID" not in build:
                problems.append(
                    f"no PMGRID (TreePM mesh): add PMGRID={value} to Config.sh"
                )
            elif config.gravity.mesh is not None and build.int_value("PMGRID") != int(
                value or 0
            ):
                problems.append(
                    f"PMGRID is {have} but gravity.mesh asks for {value}: "
                    f"set PMGRID={value} (or leave gravity.mesh unset)"
                )
        elif name == "NGENIC":
            size = build.int_value("NGENIC")
            if size is None:
                problems.append(
                    f"ics 'ngenic' needs the built-in IC generator: add NGENIC={value}"
                )
            elif size < config.box.particles_per_side:
                problems.append(
                    f"NGENIC={size} is smaller than particles per side "
                    f"({config.box.particles_per_side}): set NGENIC={value}"
                )
        elif name not in build:
            problems.append(f"{_why(name)}: add {name} to Config.sh")
    ngenic_wanted = config.code.options.get("ics", "simlab") == "ngenic"
    if not ngenic_wanted and "NGENIC" in build:
        problems.append(
            "this build has NGENIC: it makes its own ICs and never reads simlab's IC "
            "file; remove NGENIC, NGENIC_2LPT and CREATE_GRID from Config.sh "
            "(or set code.options.ics to 'ngenic')"
        )
    if ngenic_wanted and config.ics.lpt_order == 1 and "NGENIC_2LPT" in build:
        problems.append(
            "ics.lpt_order is 1 but the build has NGENIC_2LPT: remove NGENIC_2LPT"
        )
    for name, flag in NGENIC_FIELD_FLAGS.items():
        if ngenic_wanted and flag in build and not getattr(config.ics, name):
            problems.append(
                f"ics.{name} is false but the build has {flag}: remove {flag}"
            )
    return problems


_REASONS = {
    "PERIODIC": "a cosmological box is periodic",
    "SELFGRAVITY": "the particles must feel their own gravity",
    "FOF": "code.options.fof asks for FOF group catalogues",
    "SUBFIND": "code.options.subfind asks for SUBFIND subhalo catalogues",
    "POWERSPEC_ON_OUTPUT": "outputs.power_spectra asks for P(k) at each output",
    "NGENIC_2LPT": "ics.lpt_order 2 with ics 'ngenic' needs 2LPT",
    "CREATE_GRID": "ics 'ngenic' starts from a regular grid",
    "NGENIC_FIX_MODE_AMPLITUDES": "ics.fixed with ics 'ngenic' fixes mode amplitudes",
    "NGENIC_MIRROR_PHASES": "ics.paired with ics 'ngenic' flips every phase by π",
    "IDS_64BIT": "2^32 or more particles need 64-bit IDs",
    "OUTPUT_IN_DOUBLEPRECISION": "code.options.double_precision_output asks for it",
}


def _why(name: str) -> str:
    return _REASONS.get(name, f"{name} is needed")
