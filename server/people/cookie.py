"""The session cookie: the id of a sign-in, signed with the deployment secret so that a
tampered cookie is refused before the store is asked. The sign-in itself (who, until when) is a
record in the store (server/people/directory.py), so signing out ends it on every worker."""

from __future__ import annotations

import hashlib
import hmac

SESSION_COOKIE = "cocoach_session"
MAX_COOKIE = 200


def _signature(secret: str, sign_in_id: str) -> str:
    message = f"cocoach session:{sign_in_id}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def seal(secret: str, sign_in_id: str) -> str:
    return f"{sign_in_id}.{_signature(secret, sign_in_id)}"


def unseal(secret: str, value: str | None) -> str | None:
    """The sign-in id, if the cookie is one this deployment made."""
    if not value or len(value) > MAX_COOKIE or "." not in value:
        return None
    sign_in_id, _, signature = value.rpartition(".")
    if not hmac.compare_digest(signature, _signature(secret, sign_in_id)):
        return None
    return sign_in_id
