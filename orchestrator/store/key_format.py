"""API key format: `orch_<43 base62 chars>_<6 base62 crc32>`; only a SHA-256 digest is stored.

The checksum lets secret scanners and our own auth reject mistyped keys without a database lookup.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib

PREFIX = "orch_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LEN = 43  # 62**43 > 2**256
_CHECK_LEN = 6  # 62**6 > 2**32


def _base62(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK_LEN)


def generate() -> str:
    body = _base62(secrets.randbits(256), _BODY_LEN)
    return f"{PREFIX}{body}_{_checksum(body)}"


def is_well_formed(key: str) -> bool:
    if not key.startswith(PREFIX) or len(key) != len(PREFIX) + _BODY_LEN + 1 + _CHECK_LEN:
        return False
    body, _, check = key[len(PREFIX) :].partition("_")
    if len(body) != _BODY_LEN or any(c not in _ALPHABET for c in body):
        return False
    return secrets.compare_digest(check, _checksum(body))


def digest(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[: len(PREFIX) + 6]
