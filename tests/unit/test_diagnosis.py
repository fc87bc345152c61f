"""Failure diagnosis from real OpenMPI, Gadget4, kernel and scheduler messages."""

from __future__ import annotations

import pytest

from simlab.engines.diagnosis import diagnose, meaningful

# OpenMPI 4.1 (orte/tools/orterun/help-orterun.txt, "orterun:root-not-allowed")
OPENMPI_ROOT = """\
--------------------------------------------------------------------------
mpirun has detected an attempt to run as root.

Running as root is *strongly* discouraged as any mistake (e.g., in
defining TMPDIR) or bug can result in catastrophic damage to the OS
file system, leaving your system in an unusable state.

We strongly suggest that you run mpirun as a non-root user.

You can override this protection by adding the --allow-run-as-root option
to the cmd line or by setting two environment variables in the following way:
the variable OMPI_ALLOW_RUN_AS_ROOT=1 to indicate the desire to override this
protection, and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 to confirm the choice and
add one more layer of certainty that you want to do so.
We reiterate our advice against doing so - please proceed at your own risk.
--------------------------------------------------------------------------
"""
# OpenMPI 4.1, "orterun:executable-not-found"
OPENMPI_NO_EXECUTABLE = """\
--------------------------------------------------------------------------
mpirun was unable to launch the specified application as it could not access
or execute an executable:

Executable: /opt/gadget4/Gadget4
Node: node01

while attempting to start process rank 0.
--------------------------------------------------------------------------
2 total processes failed to start
"""
# Gadget4 src/main/init.cc:78 through Terminate() (src/data/macros.h)
GADGET4_NO_NGENIC = """\
READIC: Reading file `inputs/ics' on task=0 and distribute it to 0 to 1.
TERMINATE: ******!!!!!******  Code termination on task=0, function init(), \
file src/main/init.cc, line 78: Compile with option NGENIC to create \
cosmological initial conditions
--------------------------------------------------------------------------
MPI_ABORT was invoked on rank 0 in communicator MPI_COMM_WORLD
with errorcode 1.
--------------------------------------------------------------------------
"""
# Gadget4 src/io/parameters.cc: a parameter registered only under a compile option
GADGET4_TAG_NOT_ALLOWED = """\
Obtaining parameters from file 'inputs/param.txt':

Error in file inputs/param.txt:   Tag 'NSample' not allowed

We stop because of an error in the parameterfile.
"""
# Gadget4 src/data/mymalloc.cc:495
GADGET4_MAXMEMSIZE = """\
Not enough memory in mymalloc_fullinfo() to allocate 2345.67 MB for variable \
'P' at domain_decomposition()/src/domain/domain.cc/line 113 (FreeBytes=1200 MB).
"""
SLURM_OOM = """\
pm: step 3/40 a=0.1120
slurmstepd: error: Detected 1 oom-kill event(s) in StepId=4242.batch. Some of your \
processes may have been killed by the cgroup out-of-memory handler.
"""
MPIRUN_SIGNAL_9 = """\
--------------------------------------------------------------------------
mpirun noticed that process rank 1 with PID 0 on node node01 exited on signal 9 \
(Killed).
--------------------------------------------------------------------------
"""
HDF5_ENOSPC = """\
HDF5-DIAG: Error detected in HDF5 (1.12.2) MPI-process 0:
  #000: H5Dio.c line 291 in H5Dwrite(): can't write data
    major: Low-level I/O
    minor: Write failed
  #005: H5FDsec2.c line 869 in H5FD__sec2_write(): file write failed: \
time = Wed Dec  2 12:00:01 2026, filename = 'output/snapshot_003.hdf5', \
file descriptor = 5, errno = 28, error message = 'No space left on device', \
buf = 0x55d0, total write size = 1048576, bytes this sub-write = 1048576, \
bytes actually written = 18446744073709551615, offset = 0
"""
SLURM_TIME_LIMIT = """\
Sync-Point 812, Time: 0.4218, Redshift: 1.37, Systemstep: 0.0008, Dloga: 0.002
slurmstepd: error: *** JOB 4242 ON node01 CANCELLED AT 2026-12-02T12:00:00 DUE TO \
TIME LIMIT ***
"""
PBS_WALLTIME = "=>> PBS: job killed: walltime 3627 exceeded limit 3600\n"
PYTHON_TRACEBACK = """\
Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "/work/simlab/engines/pm_main.py", line 9, in <module>
    main()
FileNotFoundError: [Errno 2] Unable to open file (name = 'inputs/ics.hdf5')
simlab: process exited with status 1
"""


@pytest.mark.parametrize(
    ("log", "returncode", "cause", "evidence"),
    [
        (OPENMPI_ROOT, 1, "mpi-root", "mpirun has detected an attempt to run as root."),
        (OPENMPI_NO_EXECUTABLE, 1, "missing-executable", "mpirun was unable to launch"),
        (GADGET4_NO_NGENIC, 1, "compile-options", "Compile with option NGENIC to"),
        (GADGET4_TAG_NOT_ALLOWED, 0, "compile-options", "Error in file inputs/param"),
        (GADGET4_MAXMEMSIZE, 1, "out-of-memory", "Not enough memory in mymalloc"),
        (SLURM_OOM, -9, "out-of-memory", "slurmstepd: error: Detected 1 oom-kill"),
        (MPIRUN_SIGNAL_9, 137, "out-of-memory", "mpirun noticed that process rank 1"),
        (HDF5_ENOSPC, 1, "disk-full", "#005: H5FDsec2.c line 869"),
        (SLURM_TIME_LIMIT, -15, "walltime", "slurmstepd: error: *** JOB 4242"),
        (PBS_WALLTIME, 271, "walltime", "=>> PBS: job killed: walltime 3627"),
    ],
)
def test_known_causes_are_recognised_with_their_evidence(
    log, returncode, cause, evidence
):
    found = diagnose(log.splitlines(), returncode)
    assert found.cause == cause
    assert found.known and found.summary and found.fix
    assert found.lines[0].startswith(evidence), found.lines


def test_gadget4_termination_prefix_is_dropped_from_the_evidence():
    found = diagnose(GADGET4_NO_NGENIC.splitlines(), 1)
    assert found.lines == (
        "Compile with option NGENIC to create cosmological initial conditions",
    )


def test_reason_names_cause_exit_and_fix_in_one_line():
    found = diagnose(OPENMPI_ROOT.splitlines(), 1)
    reason = found.reason("mpirun exited with status 1")
    assert reason.startswith(
        "OpenMPI refuses to run as root: mpirun exited with status 1."
    )
    assert "OMPI_ALLOW_RUN_AS_ROOT=1" in reason and "--allow-run-as-root" in reason
    assert "\n" not in reason


def test_sigkill_without_evidence_is_explained_as_the_oom_killer_probably():
    found = diagnose(["pm: step 3/40 a=0.1120"], -9)
    assert found.cause == "out-of-memory"
    assert "most often" in found.summary
    assert found.lines == ("pm: step 3/40 a=0.1120",)


def test_exit_127_is_a_missing_executable():
    assert diagnose(["/bin/sh: 1: Gadget4: not found"], 127).cause == (
        "missing-executable"
    )


def test_unknown_failure_keeps_the_last_meaningful_lines():
    found = diagnose(PYTHON_TRACEBACK.splitlines(), 1)
    assert found.cause == "unknown" and not found.known
    assert found.lines[-1] == (
        "FileNotFoundError: [Errno 2] Unable to open file (name = 'inputs/ics.hdf5')"
    )
    assert found.reason("python exited with status 1") == (
        "python exited with status 1: " + found.lines[-1]
    )
    assert found.to_dict()["lines"] == list(found.lines)


def test_meaningful_lines_skip_rules_blanks_and_simlab_lines():
    assert meaningful([*OPENMPI_NO_EXECUTABLE.splitlines(), "simlab: x"], 2) == (
        "while attempting to start process rank 0.",
        "2 total processes failed to start",
    )


def test_a_build_for_another_cpu_is_a_compile_option_mismatch():
    # Gadget4 src/main/begrun.cc:106 (EXPLICIT_VECTORIZATION on a CPU without AVX)
    text = (
        "CPU supports instruction sets: SSE SSE2 SSE3 SSSE3 SSE4.1 SSE4.2 \n\n"
        "You compiled with explicit vectorization in terms of AVX instructions, but "
        "this CPU does not support AVX or higher.\n\n"
        "endrun called, calling MPI_Finalize()\nbye!\n"
    )
    found = diagnose(text.splitlines(), 0)
    assert found.cause == "compile-options"
    assert found.lines[0].startswith("You compiled with explicit vectorization")
