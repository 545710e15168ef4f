"""The folded states of the runs this process is writing to, so a job that reports progress thousands of
times does not read and fold its whole stream for every report.

Events are never changed or removed while a run lives, so a state folded up to version v plus the
stream's events from version v on is the state folded from the start. Only committed states go in (the
caller puts one after its transaction commits), a finished run's state is dropped, and the cache holds
the most recently written runs only. A stream whose event at version v is gone (retention deleted the
run) misses, and the caller reads the stream as it would have without the cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from uuid import UUID

from orchestrator.domain.lifecycle import is_terminal
from orchestrator.domain.state import RunState


class FoldedStates:
    def __init__(self, size: int = 1024) -> None:
        self._states: OrderedDict[UUID, RunState] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()  # a worker's threads and the lease renewer share one service

    def get(self, run_id: UUID) -> RunState | None:
        with self._lock:
            state = self._states.get(run_id)
            if state is not None:
                self._states.move_to_end(run_id)
            return state

    def put(self, run_id: UUID, state: RunState) -> None:
        """Keep the committed `state` of the run, unless the run has ended (nothing more to write)."""
        with self._lock:
            if state.status is not None and is_terminal(state.status):
                self._states.pop(run_id, None)
                return
            self._states[run_id] = state
            self._states.move_to_end(run_id)
            while len(self._states) > self._size:
                self._states.popitem(last=False)

    def forget(self, run_id: UUID) -> None:
        with self._lock:
            self._states.pop(run_id, None)
