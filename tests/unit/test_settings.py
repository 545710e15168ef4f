"""One Settings: SSE knobs keep their ORCH_SSE_* names; a placeholder secret is refused on real servers."""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError

from orchestrator.settings import Settings, secret_problem

DATABASE_URL = "postgresql://orch:db-password@db.internal:5432/orch"


def test_sse_settings_are_read_from_their_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    variables = {
        "ORCH_SSE_HEARTBEAT_SECONDS": ("sse_heartbeat_seconds", 0.3),
        "ORCH_SSE_FALLBACK_SECONDS": ("sse_fallback_seconds", 30.0),
        "ORCH_SSE_BUFFER_EVENTS": ("sse_buffer_events", 7),
        "ORCH_SSE_STALL_SECONDS": ("sse_stall_seconds", 0.5),
        "ORCH_SSE_SEND_TIMEOUT_SECONDS": ("sse_send_timeout_seconds", 9.0),
        "ORCH_SSE_PER_KEY_STREAMS": ("sse_per_key_streams", 3),
        "ORCH_SSE_MAX_STREAMS": ("sse_max_streams", 22),
        "ORCH_SSE_READ_BATCH": ("sse_read_batch", 11),
    }
    for name, (_, value) in variables.items():
        monkeypatch.setenv(name, str(value))
    settings = Settings()
    assert {field: getattr(settings, field) for field, _ in variables.values()} == dict(variables.values())
    monkeypatch.setenv("ORCH_SSE_HEARTBEAT_SECONDS", "16")  # a proxy may drop a stream idle for longer
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    "secret",
    [
        "change-me",
        "changeme",
        "CHANGE_ME",
        "changethis",
        "secret",
        "",
        "   ",
        "test-secret",
        "please change me to a real secret before going live",
        "<replace me with at least thirty-two characters>",
        "a" * 64,
        "abababababababababababababababab",
    ],
)
def test_a_placeholder_secret_is_refused_on_real_servers(secret: str) -> None:
    assert secret_problem(secret) is not None
    with pytest.raises(ValidationError) as refused:
        Settings(database_url=DATABASE_URL, secret_key=secret)
    message = str(refused.value)
    assert "ORCH_SECRET_KEY" in message and "32 characters" in message
    # The error names the problem, never the input: no database password, no secret in the logs.
    assert "db-password" not in message and (len(secret.strip()) < 8 or secret not in message)


def test_real_secrets_unset_secrets_and_the_embedded_default_are_accepted() -> None:
    real = secrets.token_urlsafe(32)
    assert secret_problem(real) is None
    assert Settings(database_url=DATABASE_URL, secret_key=real).secret_key == real
    # Unset: one is generated in the data dir at start-up, as for the embedded servers.
    assert Settings(database_url=DATABASE_URL, secret_key=None).secret_key is None
    # Without a database URL the embedded system runs locally; its secret is not checked here.
    assert Settings(database_url=None, secret_key="change-me").secret_key == "change-me"
