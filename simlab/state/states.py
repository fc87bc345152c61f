"""Run states and the transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Where a run is in its life; the run directory's status.json holds one.

    ``corrupt`` is never written: it is what listings show for a run directory
    whose status.json cannot be read, so one broken run never hides the others.
    """

    CREATED = "created"
    QUEUED = "queued"
    RUNNING = "running"
    CHECKPOINTED = "checkpointed"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CORRUPT = "corrupt"

    @property
    def is_final(self) -> bool:
        """Ended: nothing happens to the run unless a user resumes it."""
        return self in FINAL

    @property
    def is_active(self) -> bool:
        """Queued or running: the run holds or waits for resources."""
        return self in (State.QUEUED, State.RUNNING)


FINAL = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED, State.CORRUPT})

#: Every move a run may make. ``failed`` and ``cancelled`` go back to ``queued``
#: only when a user resumes the run (a new segment from its checkpoint or its
#: last snapshot); nothing leaves ``completed``.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.CREATED: frozenset({State.QUEUED, State.CANCELLED, State.FAILED}),
    State.QUEUED: frozenset({State.RUNNING, State.CANCELLED, State.FAILED}),
    State.RUNNING: frozenset(
        {State.COMPLETED, State.FAILED, State.CANCELLED, State.CHECKPOINTED}
    ),
    State.CHECKPOINTED: frozenset({State.QUEUED, State.CANCELLED, State.FAILED}),
    State.COMPLETED: frozenset(),
    State.FAILED: frozenset({State.QUEUED}),
    State.CANCELLED: frozenset({State.QUEUED}),
    State.CORRUPT: frozenset(),
}


def can_transition(old: State | str, new: State | str) -> bool:
    """Whether a run may go from ``old`` to ``new``.

    Examples
    --------
    >>> can_transition("running", "completed"), can_transition("completed", "running")
    (True, False)
    """
    return State(new) in TRANSITIONS[State(old)]
