"""Domain errors. The API maps each to a status code; none carries I/O details."""


class DomainError(Exception):
    """A command that the run's current state does not allow."""

    code = "domain_error"


class IllegalTransition(DomainError):
    code = "illegal_transition"


class StaleAttempt(DomainError):
    """A write from an attempt that is no longer the current one (a zombie worker)."""

    code = "stale_attempt"


class RunAlreadyExists(DomainError):
    code = "run_exists"
