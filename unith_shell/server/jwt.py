"""Minimal HS256 JSON Web Tokens (issue and verify), so the server needs no PyJWT.

Clients only base64-decode the payload and read ``exp`` and ``username`` [C-V1, C-V2]; the
claims beyond those are our choice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

_HEADER = {"alg": "HS256", "typ": "JWT"}


class InvalidToken(ValueError):
    """The token is malformed, wrongly signed or expired; ``str(exc)`` says which."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_segment(obj: dict[str, Any]) -> str:
    return _b64encode(json.dumps(obj, separators=(",", ":")).encode())


class TokenSigner:
    """Issues and checks tokens with one secret (random per server unless given)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    def _sign(self, signing_input: str) -> str:
        digest = hmac.new(self._secret, signing_input.encode("ascii"), hashlib.sha256).digest()
        return _b64encode(digest)

    def issue(
        self,
        *,
        username: str,
        user_id: str,
        session_id: str,
        ttl: float,
        now: float | None = None,
    ) -> str:
        issued = int(time.time() if now is None else now)
        payload = {
            "sub": username,
            "username": username,
            "user_id": user_id,
            "session_id": session_id,
            "iat": issued,
            "exp": int(issued + ttl),
        }
        signing_input = f"{_json_segment(_HEADER)}.{_json_segment(payload)}"
        return f"{signing_input}.{self._sign(signing_input)}"

    def verify(self, token: object, now: float | None = None) -> dict[str, Any]:
        """Return the payload of a valid, unexpired token, or raise :class:`InvalidToken`."""
        # A JWT is base64url and dots: anything else (non-ASCII included) is not one, and
        # must not reach the ASCII encoding of the signature check.
        if not isinstance(token, str) or not token.isascii() or token.count(".") != 2:
            raise InvalidToken("not a JWT")
        header_b64, payload_b64, signature = token.split(".")
        expected = self._sign(f"{header_b64}.{payload_b64}")
        if not hmac.compare_digest(expected, signature):
            raise InvalidToken("bad signature")
        try:
            header = json.loads(_b64decode(header_b64))
            payload = json.loads(_b64decode(payload_b64))
        except ValueError:
            raise InvalidToken("undecodable segment") from None
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            raise InvalidToken("unsupported algorithm")
        if not isinstance(payload, dict):
            raise InvalidToken("payload is not an object")
        exp = payload.get("exp")
        if not isinstance(exp, int) or isinstance(exp, bool):
            raise InvalidToken("no exp claim")
        if exp <= (time.time() if now is None else now):
            raise InvalidToken("expired")
        return payload
