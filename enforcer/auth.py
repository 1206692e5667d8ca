"""Bearer token check of the webhook and the audit endpoints."""

from __future__ import annotations

import hmac


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Tell whether an Authorization header carries ``Bearer <token>``.

    The scheme is case-insensitive (RFC 7235); the token is compared in
    constant time so its content cannot be probed by timing.
    """
    if not authorization:
        return False
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(
        credentials.strip().encode("utf-8", "surrogateescape"),
        token.encode("utf-8"),
    )
