"""Tokens (DESIGN §2): JWT, HS256, signed with the deployment secret.

Claims: `sub`, `name`, `room`, `role`, `exp`; optional `org`, `grants`. A trust's portal mints
them with any JWT library; `cocoach token` mints them from the command line.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping

import jwt
import msgspec

from server.errors import (
    TokenExpired,
    TokenInvalid,
    TokenMissing,
    TokenRoleUnknown,
    TokenWrongRoom,
)
from server.rooms.roles import Role

ALGORITHM = "HS256"
ROLES = frozenset(r.value for r in Role)
MAX_TOKEN_BYTES = 4096


class Claims(msgspec.Struct, frozen=True):
    sub: str
    name: str
    room: str
    role: Role
    exp: float
    org: str | None = None
    grants: dict[str, bool] | None = None


def new_sub() -> str:
    """A new person's id: unique, and never made from a name (two coaches called Cora Coach
    are two people; a name can change)."""
    return "u-" + secrets.token_hex(8)


def mint(
    secret: str,
    *,
    room: str,
    role: Role,
    name: str,
    sub: str,
    ttl: float,
    org: str | None = None,
    grants: Mapping[str, bool] | None = None,
    now: float | None = None,
) -> str:
    issued = time.time() if now is None else now
    claims: dict[str, object] = {
        "sub": sub,
        "name": name,
        "room": room,
        "role": role.value,
        "iat": int(issued),
        "exp": int(issued + ttl),
    }
    if org is not None:
        claims["org"] = org
    if grants:
        claims["grants"] = dict(grants)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(secret: str, token: str | None, *, room: str) -> Claims:
    """The token's claims for `room`, or the AuthError that says why not."""
    if not token:
        raise TokenMissing("no token: send ?token=... or an Authorization: Bearer header")
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenInvalid(f"token is longer than {MAX_TOKEN_BYTES} bytes")
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub", "room", "role", "name"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenExpired("token has expired") from None
    except jwt.InvalidSignatureError:
        raise TokenInvalid("token signature does not match this server's secret") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenInvalid(f"token lacks the {exc.claim!r} claim") from None
    except jwt.PyJWTError as exc:
        raise TokenInvalid(f"token is not a valid JWT: {exc}") from None
    if payload["room"] != room:
        raise TokenWrongRoom("token is for another room")
    role = payload["role"]
    if role not in ROLES:
        raise TokenRoleUnknown(f"token role {str(role)[:32]!r} is not one of {sorted(ROLES)}")
    try:
        claims = msgspec.convert(payload, Claims, strict=False)
    except msgspec.ValidationError as exc:
        raise TokenInvalid(f"token claims are malformed: {exc}") from None
    if not 1 <= len(claims.sub) <= 200 or not 1 <= len(claims.name) <= 200:
        raise TokenInvalid("token `sub` and `name` must be 1-200 characters")
    return claims
