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
import re
from collections.abc import Mapping
from typing import Any

import msgspec
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import OAuth
from joserfc.errors import JoseError

from server.errors import ConfigError
from server.settings import Settings

SIGN_IN_COOKIE = "cocoach_signin"
SIGN_IN_SECONDS = 600  # a sign-in under way must finish within this
SCOPE = "openid email profile"
NAME = "school"  # the provider of COCOACH_OIDC_ISSUER
PROVIDER_NAME = re.compile(r"^[a-z0-9-]{1,32}$")

# What a failed callback raises: the provider's refusal, a state that is not this browser's,
# an ID token that does not verify (signature, issuer, audience, expiry, nonce).
SignInErrors = (AuthlibBaseError, JoseError)


def flow_secret(settings: Settings) -> str:
    """The key of the sign-in cookie: derived from the deployment secret, never equal to it."""
    assert settings.secret is not None
    return hmac.new(settings.secret.encode(), b"cocoach sign-in flow", hashlib.sha256).hexdigest()


class Provider(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One identity provider the deployment trusts; how its people's school is told may be
    its own (a Microsoft school maps its domains, a Google school its own)."""

    name: str
    issuer: str
    client_id: str
    client_secret: str
    label: str = "your school account"
    org_claim: str | None = None
    org_domains: str | None = None


def providers_of(settings: Settings) -> list[Provider]:
    """`COCOACH_OIDC_ISSUER` and its settings (named "school"), then each provider of
    `COCOACH_OIDC_PROVIDERS`, a JSON list of Provider objects; ConfigError naming what is
    wrong."""
    found: list[Provider] = []
    if settings.oidc_issuer:
        found.append(
            Provider(
                NAME,
                settings.oidc_issuer,
                settings.oidc_client_id or "",
                settings.oidc_client_secret or "",
                settings.oidc_label,
                settings.oidc_org_claim or None,
                settings.oidc_org_domains or None,
            )
        )
    if settings.oidc_providers.strip():
        try:
            found += msgspec.json.decode(settings.oidc_providers, type=list[Provider])
        except msgspec.DecodeError as exc:  # ValidationError included
            raise ConfigError(f"COCOACH_OIDC_PROVIDERS: {exc}") from None
    names = [p.name for p in found]
    for provider in found:
        if not PROVIDER_NAME.match(provider.name) or names.count(provider.name) > 1:
            raise ConfigError(
                f"identity provider name {provider.name[:40]!r}: 1-32 of a-z 0-9 -, each once"
            )
        if not provider.issuer.startswith(("https://", "http://")):
            raise ConfigError(f"identity provider {provider.name!r}: the issuer is not a URL")
        if not provider.client_id or not provider.client_secret:
            raise ConfigError(f"identity provider {provider.name!r} needs a client id and secret")
    return found


class Providers:
    """The identity providers this deployment trusts, each an Authlib client."""

    def __init__(self, settings: Settings) -> None:
        self.oauth = OAuth()
        self.all = providers_of(settings)
        for provider in self.all:
            issuer = provider.issuer.rstrip("/")
            self.oauth.register(
                provider.name,
                client_id=provider.client_id,
                client_secret=provider.client_secret,
                server_metadata_url=f"{issuer}/.well-known/openid-configuration",
                client_kwargs={"scope": SCOPE, "code_challenge_method": "S256"},
            )

    @property
    def configured(self) -> bool:
        return bool(self.all)

    def get(self, name: str | None) -> Provider | None:
        """The provider of this name; the first with no name."""
        if name is None:
            return self.all[0] if self.all else None
        return next((p for p in self.all if p.name == name), None)

    def client(self, provider: Provider) -> Any:
        """The provider's Authlib client (StarletteOAuth2App)."""
        return self.oauth.create_client(provider.name)


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
