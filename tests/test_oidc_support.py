"""The OpenID Connect test harness works end to end, without cocoach's server: a tiny relying
party made here (Starlette on uvicorn, Authlib's ID-token validation) signs people in at the
real `oidc-provider` that tests/oidc_support.py runs."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.oidc_support import (
    Provider,
    SignInFailed,
    authorization_request,
    exchange_code,
    follow_to_callback,
    oidc_provider,
    reach_callback,
    sign_in_with_httpx,
)
from tests.support import TIMEOUT

CLIENT_ID, CLIENT_SECRET = "cocoach-test", "s3cret-" + "x" * 24
ANN = {
    "sub": "ann-0001",
    "email": "ann@ashby.sch.uk",
    "name": "Ann Archer",
    "password": "ann-pass",
    "hd": "ashby.sch.uk",
    "school": "ashby-primary",
}
BEN = {"sub": "ben-0002", "email": "ben@brook.sch.uk", "name": "Ben Brook", "password": "ben-pass"}


async def verify_id_token(
    provider: Provider, tokens: dict[str, Any], nonce: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(claims, header) of the token response's ID token, checked as Authlib's OIDC client does:
    signature against the provider's JWKS, iss, aud, exp, iat, nonce, at_hash."""
    metadata = await provider.discover()
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        jwks = (await client.get(metadata["jwks_uri"])).json()
    token = jwt.decode(
        tokens["id_token"],
        KeySet.import_key_set(jwks),
        registry=JWSRegistry(algorithms=metadata["id_token_signing_alg_values_supported"]),
    )
    claims = CodeIDToken(
        token.claims,
        token.header,
        {"iss": {"values": [provider.issuer]}},
        {"nonce": nonce, "client_id": CLIENT_ID, "access_token": tokens["access_token"]},
    )
    claims.validate(leeway=5)
    return dict(claims), dict(token.header)


# ---- a tiny relying party ----------------------------------------------------------------


@dataclass
class RelyingParty:
    base: str
    provider: Provider | None = None
    flows: dict[str, dict[str, str]] = field(default_factory=dict)  # rp_flow cookie -> request
    signed_in: list[dict[str, Any]] = field(default_factory=list)  # ID-token claims
    userinfo: list[dict[str, Any]] = field(default_factory=list)

    @property
    def redirect_uri(self) -> str:
        return f"{self.base}/auth/callback"

    async def login(self, request: Request) -> Response:
        assert self.provider is not None
        auth = authorization_request(self.provider, CLIENT_ID, self.redirect_uri)
        flow = secrets.token_urlsafe(16)
        self.flows[flow] = {
            "state": auth.state,
            "nonce": auth.nonce,
            "verifier": auth.code_verifier,
        }
        response = RedirectResponse(auth.url, status_code=302)
        response.set_cookie("rp_flow", flow, httponly=True, samesite="lax")
        return response

    async def callback(self, request: Request) -> Response:
        assert self.provider is not None
        flow = self.flows.pop(request.cookies.get("rp_flow", ""), None)
        if flow is None or request.query_params.get("state") != flow["state"]:
            return PlainTextResponse("state mismatch", status_code=400)
        if request.query_params.get("iss") != self.provider.issuer:
            return PlainTextResponse("wrong iss", status_code=400)
        code = request.query_params.get("code")
        if not code:
            return PlainTextResponse(f"error {request.query_params.get('error')}", 400)
        exchanged = await exchange_code(
            self.provider, CLIENT_ID, CLIENT_SECRET, code, self.redirect_uri, flow["verifier"]
        )
        if exchanged.status_code != 200:
            return PlainTextResponse(f"token endpoint: {exchanged.text}", status_code=400)
        tokens = exchanged.json()
        claims, _ = await verify_id_token(self.provider, tokens, flow["nonce"])
        self.signed_in.append(claims)
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            info = await client.get(
                (await self.provider.discover())["userinfo_endpoint"],
                headers={"Authorization": f"Bearer {tokens['access_token']}"},
            )
        self.userinfo.append(info.json())
        response = RedirectResponse("/", status_code=303)
        response.set_cookie("rp_session", claims["sub"], httponly=True, samesite="lax")
        response.delete_cookie("rp_flow")
        return response


@contextlib.asynccontextmanager
async def relying_party_and_provider() -> AsyncIterator[tuple[RelyingParty, Provider]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    rp = RelyingParty(f"http://127.0.0.1:{sock.getsockname()[1]}")
    app = Starlette(
        routes=[Route("/login", rp.login), Route("/auth/callback", rp.callback)],
    )
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        clients = [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [rp.redirect_uri],
            }
        ]
        async with oidc_provider(clients, [ANN, BEN]) as provider:
            rp.provider = provider
            async with asyncio.timeout(TIMEOUT):
                while not server.started:
                    await asyncio.sleep(0.01)
            yield rp, provider
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, TIMEOUT)
        sock.close()


@pytest.fixture
async def rp_op() -> AsyncIterator[tuple[RelyingParty, Provider]]:
    async with relying_party_and_provider() as pair:
        yield pair


# ---- the tests ---------------------------------------------------------------------------


async def test_sign_in_through_the_form_gives_the_users_id_token(
    rp_op: tuple[RelyingParty, Provider],
) -> None:
    rp, provider = rp_op
    async with httpx.AsyncClient(timeout=TIMEOUT) as browser:
        response = await sign_in_with_httpx(browser, f"{rp.base}/login", ANN["email"], "ann-pass")
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/"
        assert browser.cookies.get("rp_session") == ANN["sub"]
        # the provider's own cookies share the host's jar under names of their own
        assert {"op_session", "op_session.sig"} <= {cookie.name for cookie in browser.cookies.jar}

        # signed in at the provider already: the next sign-in goes through without the form
        again = await sign_in_with_httpx(browser, f"{rp.base}/login", "", "")
        assert again.status_code == 303

    (claims, second) = rp.signed_in
    assert claims["iss"] == provider.issuer
    assert claims["aud"] == CLIENT_ID
    for key in ("sub", "email", "name", "hd", "school"):
        assert claims[key] == ANN[key], key
    assert claims["email_verified"] is True
    assert "password" not in claims
    assert second["sub"] == ANN["sub"]
    assert rp.userinfo[0]["email"] == ANN["email"]
    assert rp.userinfo[0]["name"] == ANN["name"]


async def test_a_wrong_password_gives_no_code(rp_op: tuple[RelyingParty, Provider]) -> None:
    rp, _ = rp_op
    async with httpx.AsyncClient(timeout=TIMEOUT) as browser:
        with pytest.raises(SignInFailed) as refused:
            await reach_callback(browser, f"{rp.base}/login", ANN["email"], "ben-pass")
        assert refused.value.response.status_code == 401
        assert "Invalid login or password" in refused.value.response.text
        assert 'name="login"' in refused.value.response.text
        with pytest.raises(SignInFailed):
            await reach_callback(browser, f"{rp.base}/login", "nobody@ashby.sch.uk", "x")
    assert rp.signed_in == []


async def test_a_code_is_single_use_and_bound_to_its_verifier(
    rp_op: tuple[RelyingParty, Provider],
) -> None:
    rp, provider = rp_op
    async with httpx.AsyncClient(timeout=TIMEOUT) as browser:
        auth = authorization_request(provider, CLIENT_ID, rp.redirect_uri)
        callback = await follow_to_callback(browser, auth.url, BEN["email"], "ben-pass")
        assert callback.state == auth.state and callback.iss == provider.issuer and callback.code

        def exchange(verifier: str | None) -> Any:
            assert callback.code is not None
            return exchange_code(
                provider, CLIENT_ID, CLIENT_SECRET, callback.code, rp.redirect_uri, verifier
            )

        assert (await exchange("x" * 43)).json()["error"] == "invalid_grant"  # wrong verifier
        auth = authorization_request(provider, CLIENT_ID, rp.redirect_uri)
        callback = await follow_to_callback(browser, auth.url, "", "")  # signed in: no form
        first = await exchange(auth.code_verifier)
        assert first.status_code == 200, first.text
        claims, header = await verify_id_token(provider, first.json(), auth.nonce)
        assert claims["sub"] == BEN["sub"] and "hd" not in claims
        reused = await exchange(auth.code_verifier)
        assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"

        # PKCE is required
        no_pkce = authorization_request(provider, CLIENT_ID, rp.redirect_uri, pkce=False)
        refused = await follow_to_callback(browser, no_pkce.url, "", "")
        assert refused.error == "invalid_request" and refused.code is None

        # a rotated key signs the next ID token; the JWKS publishes both
        kid = await provider.rotate_keys()
        auth = authorization_request(provider, CLIENT_ID, rp.redirect_uri, prompt="login")
        callback = await follow_to_callback(browser, auth.url, BEN["sub"], "ben-pass")
        rotated = await exchange(auth.code_verifier)
        _, new_header = await verify_id_token(provider, rotated.json(), auth.nonce)
        assert new_header["kid"] == kid != header["kid"]
