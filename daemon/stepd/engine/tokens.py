"""Task tokens of `.waitForTaskToken` Tasks: where a callback goes, and proof it may.

A token names the task it belongs to (machine, execution name, cursor id) in its readable
part, so a callback finds its execution without an index, and carries 256 random bits that
the stored task must hold too: the token is stored with the task call, so it survives a
restart, and a forged, stale or closed task's token is refused.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets

PREFIX = "stepd1"
MAX_TOKEN_LENGTH = 2048  # AWS's limit on taskToken


def make_token(machine: str, name: str, cursor_id: str) -> str:
    """A new token for the task the cursor `cursor_id` of execution `name` is at."""
    where = json.dumps([machine, name, cursor_id], separators=(",", ":"))
    readable = base64.urlsafe_b64encode(where.encode()).decode().rstrip("=")
    return f"{PREFIX}.{readable}.{secrets.token_urlsafe(32)}"


def token_target(token: str) -> tuple[str, str, str] | None:
    """(machine, execution name, cursor id) a token names, or None when it is not a token."""
    if not 0 < len(token) <= MAX_TOKEN_LENGTH:
        return None
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[2]:
        return None
    readable = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        where = json.loads(base64.urlsafe_b64decode(readable.encode()))
    except (ValueError, binascii.Error):
        return None
    if not (isinstance(where, list) and len(where) == 3 and all(isinstance(w, str) for w in where)):
        return None
    return where[0], where[1], where[2]


def same_token(stored: str | None, given: str) -> bool:
    """Whether `given` is the stored token (compared in constant time)."""
    return stored is not None and hmac.compare_digest(stored.encode(), given.encode())
