"""Signing in with the school's identity provider (OpenID Connect, authorization code flow with
PKCE), through Authlib: discovery, the JWKS and its rotation, `state`, `nonce`, and the ID
token's `iss`, `aud` and `exp` checks all come from it (docs/people.md).

While a sign-in is under way its `state`, `nonce` and PKCE verifier are kept in a short-lived,
signed cookie of its own (Starlette's SessionMiddleware, `cocoach_signin`), bound to the
browser that started it: a callback from another browser (a login CSRF) finds no state.
"""

from __future__ import annotations

import hashlib
import hmac
import warnings
from collections.abc import Mapping
from typing import Any

from server.settings import Settings

with warnings.catch_warnings():
    # Authlib 1.9 warns about its own httpx module at import; the client still uses it.
    warnings.simplefilter("ignore")
    from authlib.common.errors import AuthlibBaseError
    from authlib.integrations.starlette_client import OAuth
    from joserfc.errors import JoseError

SIGN_IN_COOKIE = "cocoach_signin"
SIGN_IN_SECONDS = 600  # a sign-in under way must finish within this
SCOPE = "openid email profile"
NAME = "school"

# What a failed callback raises: the provider's refusal, a state that is not this browser's,
# an ID token that does not verify (signature, issuer, audience, expiry, nonce).
SignInErrors = (AuthlibBaseError, JoseError)


def flow_secret(settings: Settings) -> str:
    """The key of the sign-in cookie: derived from the deployment secret, never equal to it."""
    assert settings.secret is not None
    return hmac.new(settings.secret.encode(), b"cocoach sign-in flow", hashlib.sha256).hexdigest()


class Providers:
    """The identity providers this deployment trusts (one today: `COCOACH_OIDC_ISSUER`)."""

    def __init__(self, settings: Settings) -> None:
        self.oauth = OAuth()
        self.issuer = (settings.oidc_issuer or "").rstrip("/") or None
        self.label = settings.oidc_label
        if self.issuer is not None:
            self.oauth.register(
                NAME,
                client_id=settings.oidc_client_id,
                client_secret=settings.oidc_client_secret,
                server_metadata_url=f"{self.issuer}/.well-known/openid-configuration",
                client_kwargs={"scope": SCOPE, "code_challenge_method": "S256"},
            )

    @property
    def configured(self) -> bool:
        return self.issuer is not None

    def client(self) -> Any:
        """The provider's Authlib client (StarletteOAuth2App)."""
        return self.oauth.create_client(NAME)


def person_claims(userinfo: Mapping[str, Any]) -> tuple[str, str, str | None]:
    """The subject, the name, and the e-mail if the provider verified it."""
    subject = str(userinfo["sub"])
    name = userinfo.get("name")
    email = userinfo.get("email")
    verified = userinfo.get("email_verified", True) is not False
    return (
        subject,
        name if isinstance(name, str) else "",
        email.lower() if isinstance(email, str) and verified else None,
    )
