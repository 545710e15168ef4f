"""The run lifecycle as data: allowed status transitions, the terminal set, event -> status."""

from schemas.events import (
    RunCanceled,
    RunCreated,
    RunFailed,
    RunParked,
    RunResumed,
    RunStarted,
    RunSucceeded,
)
from schemas.runs import RunStatus

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELED}),
    RunStatus.RUNNING: frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELED: frozenset(),
}

TERMINAL: frozenset[RunStatus] = frozenset(s for s, targets in TRANSITIONS.items() if not targets)

# Events that move a run to a status; every other event leaves the status as it is.
STATUS_AFTER_EVENT: dict[str, RunStatus] = {
    RunCreated.type: RunStatus.PENDING,
    RunStarted.type: RunStatus.RUNNING,
    RunSucceeded.type: RunStatus.SUCCEEDED,
    RunFailed.type: RunStatus.FAILED,
    RunCanceled.type: RunStatus.CANCELED,
}

# A running run between attempts, by what brings its next one. After a failed or lost attempt a retry is
# scheduled at once (`retry_at`); a parked run (a workflow waiting for its children) gets its next attempt
# from the event that resumes it, which the last of its awaited children's terminal events produces. Neither
# changes the status: the run is `running` throughout, but holds no lease and no worker while it waits.
WAITS_FOR: dict[str, str] = {RunParked.type: RunResumed.type}


def can_transition(current: RunStatus, target: RunStatus) -> bool:
    return target in TRANSITIONS[current]


def is_terminal(status: RunStatus) -> bool:
    return status in TERMINAL
