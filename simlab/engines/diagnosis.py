"""Why a run failed, in words a user can act on, read from its last log lines.

:func:`diagnose` matches the output of a failed code (OpenMPI, Gadget4, the
kernel, batch schedulers) against known causes and returns a :class:`Diagnosis`
with what happened, how to fix it and the lines that show it; an unknown failure
gets the last meaningful lines instead. The task runner stores it in
``status.json`` (``reason`` and ``diagnosis``), so ``simlab status``, ``simlab
ls``, the REST run model and the widgets all show the same words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

#: Meaningful lines kept as evidence of an unrecognised failure.
EVIDENCE_LINES = 3


@dataclass(frozen=True)
class Diagnosis:
    """A failure's cause (``unknown`` when none matched), its fix and evidence.

    ``cause`` is a stable key (``mpi-root``, ``missing-executable``,
    ``compile-options``, ``out-of-memory``, ``disk-full``, ``walltime``,
    ``job-start`` (a batch job that died before its worker, see
    :mod:`simlab.dispatch.job_exits`) or ``unknown``); ``summary`` says what
    happened and ``fix`` what to do, both empty when the cause is unknown;
    ``lines`` are the log lines that show it.
    """

    cause: str
    summary: str
    fix: str
    lines: tuple[str, ...]

    @property
    def known(self) -> bool:
        """Whether a known cause was recognised."""
        return self.cause != "unknown"

    def reason(self, exit: str) -> str:
        """The one-line failure reason: cause, how the process ended, fix.

        Examples
        --------
        >>> Diagnosis("unknown", "", "", ("boom",)).reason("code exited with status 1")
        'code exited with status 1: boom'
        """
        if not self.known:
            return f"{exit}: {self.lines[-1]}" if self.lines else exit
        return f"{self.summary}: {exit}. Fix: {self.fix}"

    def to_dict(self) -> dict[str, object]:
        """The JSON form kept in status.json under ``diagnosis``."""
        data = asdict(self)
        data["lines"] = list(self.lines)
        return data


@dataclass(frozen=True)
class _Rule:
    cause: str
    pattern: re.Pattern[str]
    summary: str
    fix: str

    def found(self, lines: tuple[str, ...]) -> Diagnosis:
        """This rule's diagnosis, shown by ``lines``."""
        return Diagnosis(self.cause, self.summary, self.fix, lines)


def _rule(cause: str, pattern: str, summary: str, fix: str) -> _Rule:
    return _Rule(cause, re.compile(pattern, re.IGNORECASE), summary, fix)


#: Known causes, most specific first; the first rule with a matching line wins.
RULES: tuple[_Rule, ...] = (
    _rule(
        "mpi-root",
        r"has detected an attempt to run as root|--allow-run-as-root",
        "OpenMPI refuses to run as root",
        "run simlab as a normal user, or (in a container only) set "
        "OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the "
        "cluster profile's environment or add --allow-run-as-root to its mpirun",
    ),
    _rule(
        "missing-executable",
        r"unable to launch the specified application|command not found"
        r"|cannot start '.*': No such file|cannot start '.*': Permission denied"
        r"|exec(vp)?\(\) failed",
        "the code's executable is missing or not executable",
        "set code.executable (or executables.<engine> in the cluster profile) to "
        "an executable file that exists on the machine the run lands on",
    ),
    _rule(
        "compile-options",
        r"Compile with option \w+|need to compile with \w+"
        r"|does not match NTYPES|does not work together with"
        r"|Error in file .*Tag '\w+' not allowed|I miss a value for tag '\w+'"
        r"|You compiled with explicit vectorization",
        "the executable was built with other compile-time options than the run needs",
        "build the code with the Config.sh simlab writes for this run "
        "(`simlab gadget4 config CONFIG`) or pick a matching code.executable",
    ),
    _rule(
        "out-of-memory",
        r"out of memory|oom[-_ ]kill|Cannot allocate memory|MemoryError"
        r"|std::bad_alloc|Not enough memory in my\w*alloc",
        "the code ran out of memory",
        "give the run more memory (resources.memory, or code.options.MaxMemSize "
        "for Gadget4), more cores or nodes, or fewer particles",
    ),
    _rule(
        "disk-full",
        r"No space left on device|ENOSPC|Disk quota exceeded",
        "disk full (ENOSPC)",
        "free space in the run root (or raise the quota), then resume the run",
    ),
    _rule(
        "walltime",
        r"DUE TO TIME LIMIT|walltime \S+ exceeded limit"
        r"|exceeded .*(wall ?(clock )?time|time limit)",
        "the batch job reached its walltime",
        "raise resources.walltime, or let the engine checkpoint before the limit "
        "and resume the run",
    ),
)

#: A process killed by SIGKILL without other evidence: most often the OOM killer.
_SIGKILL = _rule(
    "out-of-memory",
    r"exited on signal 9 \(Killed\)",
    "killed by SIGKILL, most often by the kernel's out-of-memory killer",
    "if nobody killed it on purpose, give the run more memory "
    "(resources.memory), more cores or nodes, or fewer particles",
)

_NOISE = re.compile(r"^\s*$|^[-=*_#~.\s]+$|^simlab: ")
#: Gadget4's prefix before a termination message (src/data/macros.h).
_GADGET4_TERMINATE = re.compile(
    r"^TERMINATE: \S+\s+Code termination on task=\d+, function \S+, file \S+, "
    r"line \d+: "
)


def _clean(line: str) -> str:
    """A log line as evidence: stripped, without Gadget4's termination prefix."""
    return _GADGET4_TERMINATE.sub("", line.strip())


def meaningful(lines: Sequence[str], n: int = EVIDENCE_LINES) -> tuple[str, ...]:
    """The last ``n`` lines that say something: no blanks, rules or simlab's own.

    Examples
    --------
    >>> meaningful(["x", "  ", "-----", "y", "simlab: process exited with status 1"])
    ('x', 'y')
    """
    kept = [_clean(line) for line in lines if not _NOISE.match(line)]
    return tuple(kept[-n:])


def diagnose(lines: Sequence[str], returncode: int | None = None) -> Diagnosis:
    """Recognise why a code failed from its last output lines and exit status.

    Examples
    --------
    >>> diagnose(["fwrite: No space left on device"], 1).cause
    'disk-full'
    >>> diagnose(["segfault at 0x0"], 139).lines
    ('segfault at 0x0',)
    """
    text = [line.rstrip("\n") for line in lines]
    for rule in (*RULES, _SIGKILL):
        evidence = tuple(_clean(line) for line in text if rule.pattern.search(line))
        if evidence:
            return Diagnosis(
                rule.cause, rule.summary, rule.fix, evidence[:EVIDENCE_LINES]
            )
    if returncode == 127:
        rule = RULES[1]
        return Diagnosis(rule.cause, rule.summary, rule.fix, meaningful(text))
    if returncode in (-9, 137):
        return Diagnosis(
            _SIGKILL.cause, _SIGKILL.summary, _SIGKILL.fix, meaningful(text)
        )
    return Diagnosis("unknown", "", "", meaningful(text))
