from __future__ import annotations

import pytest

from orchestrator.api import cursor
from orchestrator.store import key_format as apikeys


def test_generated_keys_are_well_formed_and_unique() -> None:
    generated = {apikeys.generate() for _ in range(200)}
    assert len(generated) == 200
    assert all(apikeys.is_well_formed(k) for k in generated)


def test_a_mistyped_key_fails_its_checksum() -> None:
    key = apikeys.generate()
    body = key[len("orch_") : len("orch_") + 43]
    flipped = ("B" if body[5] == "A" else "A").join([body[:5], body[6:]])
    assert not apikeys.is_well_formed(key.replace(body, flipped))
    assert not apikeys.is_well_formed("orch_short")


def test_cursor_round_trip_and_binding() -> None:
    token = cursor.encode("s", "t1", {"status": None}, {"c": "x", "i": "y"})
    assert cursor.decode("s", token, "t1", {"status": None}) == {"c": "x", "i": "y"}
    for secret, tenant, filters in (
        ("other", "t1", {"status": None}),
        ("s", "t2", {"status": None}),
        ("s", "t1", {"status": "failed"}),
    ):
        with pytest.raises(cursor.InvalidCursor):
            cursor.decode(secret, token, tenant, filters)
    for garbage in ("", "!!!", "abc", token[:-3], token + "A"):
        with pytest.raises(cursor.InvalidCursor):
            cursor.decode("s", garbage, "t1", {"status": None})
