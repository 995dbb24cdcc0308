"""Bearer-token check with OpenMetadata's 401 messages.

OpenMetadata bot tokens are signed JWTs. The mock does not verify signatures: a token is valid
when it is one of the configured tokens (or any token when none are configured), and a JWT
whose ``exp`` claim lies in the past is refused as expired, as the real server does.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from ._errors import ApiError

# OpenMetadata's 401 messages (not secrets).
TOKEN_NOT_PRESENT = "Not Authorized! Token not present"  # noqa: S105
INVALID_TOKEN = "Not Authorized! Invalid Token"  # noqa: S105
EXPIRED_TOKEN = "Expired token!"  # noqa: S105


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT-shaped token, or None when the token is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


class TokenCheck:
    """Decides whether an ``Authorization`` header is accepted."""

    def __init__(
        self, tokens: Iterable[str] | None, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self.set_tokens(tokens)

    def set_tokens(self, tokens: Iterable[str] | None) -> None:
        """Replace the accepted tokens (None: accept any well-formed, unexpired token)."""
        self._tokens = None if tokens is None else frozenset(tokens)

    def check(self, header: str | None) -> None:
        """Raise ``ApiError(401)`` unless the header carries an accepted bearer token."""
        if not header or not header.startswith("Bearer "):
            raise ApiError(401, TOKEN_NOT_PRESENT)
        token = header[len("Bearer ") :].strip()
        if not token or token == "null":  # noqa: S105 - what a client sends for "no token"
            raise ApiError(401, TOKEN_NOT_PRESENT)
        if self._tokens is not None and token not in self._tokens:
            raise ApiError(401, INVALID_TOKEN)
        claims = jwt_claims(token)
        expires = claims.get("exp") if claims else None
        numeric = isinstance(expires, int | float) and not isinstance(expires, bool)
        if numeric and float(expires) <= self._clock():  # type: ignore[arg-type]
            raise ApiError(401, EXPIRED_TOKEN)
