"""Bearer-token checks. Tokens are compared in constant time and never logged."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from aiohttp import web

from .errors import ApiError


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_matches(given: str, expected: str) -> bool:
    if not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def require_token(request: web.Request, accepted: Iterable[str], *, realm: str) -> str:
    """Return the matching token; 401 when none is given, 403 when it is wrong."""
    given = bearer_token(request)
    if given is None:
        raise ApiError(401, "missing bearer token (Authorization: Bearer <token>)",
                       headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})
    ok = False
    for expected in accepted:
        # No short-circuit: every candidate is compared so timing does not tell which matched.
        ok |= token_matches(given, expected)
    if not ok:
        raise ApiError(403, "token is not valid for this resource")
    return given
