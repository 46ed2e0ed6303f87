"""A real OpenID Connect provider for the tests, and a browserless way through its sign-in.

`oidc_provider(clients, users)` starts tests/oidc/provider.mjs (the certified npm package
`oidc-provider`) on a free loopback port and yields a `Provider`; `sign_in_with_httpx` drives a
whole authorization-code sign-in from the relying party's /login to its callback with one
`httpx.AsyncClient`, and `reach_callback` stops just before the callback, for forged and replayed
callbacks. See the top of tests/oidc/provider.mjs for how the provider is configured (PKCE
required, consent granted automatically, ID token carrying email and name, cookie names)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx

from tests.support import TIMEOUT

OIDC = Path(__file__).parent / "oidc"
PROVIDER = OIDC / "provider.mjs"
MAX_HOPS = 20

_npm_lock = threading.Lock()  # not an asyncio.Lock: each test has its own event loop


class SignInFailed(AssertionError):
    """The provider did not send the browser back to the relying party: a wrong login or
    password (the form again, 401), an error page, or no way on. `response` is the last one."""

    def __init__(self, message: str, response: httpx.Response) -> None:
        super().__init__(
            f"{message}: {response.request.method} {response.request.url} -> {response.status_code}"
        )
        self.response = response


# ---- the provider process -----------------------------------------------------------------


def _npm_ci() -> None:
    with _npm_lock:
        if not (OIDC / "node_modules" / "oidc-provider" / "package.json").exists():
            _run_npm_ci()


def _run_npm_ci() -> None:
    npm = shutil.which("npm")
    assert npm, "npm is not installed: needed once for tests/oidc (npm ci)"
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=OIDC,
        capture_output=True,
        text=True,
        timeout=20 * TIMEOUT,
    )
    assert done.returncode == 0, f"npm ci in tests/oidc failed:\n{done.stdout}\n{done.stderr}"


async def node_with_dependencies() -> str:
    """The node binary, after `npm ci` in tests/oidc if its node_modules is missing (once)."""
    node = shutil.which("node")
    assert node, "node is not installed: the OpenID Connect tests run the npm oidc-provider"
    if not (OIDC / "node_modules" / "oidc-provider" / "package.json").exists():
        await asyncio.to_thread(_npm_ci)
    return node


@dataclass
class Provider:
    issuer: str  # http://127.0.0.1:<port>, no trailing slash
    port: int
    process: asyncio.subprocess.Process
    clients: list[dict[str, Any]]
    users: list[dict[str, Any]]
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=200))

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def log(self) -> str:
        """The provider's recent stderr (warnings, server errors), for assertion messages."""
        return "".join(self.stderr)

    async def discover(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.get(self.discovery_url)
            response.raise_for_status()
            metadata: dict[str, Any] = response.json()
            return metadata

    async def rotate_keys(self, *, keep_old: bool = True) -> str:
        """A new signing key from now on (the JWKS lists it first; the old ones after it, or not
        at all when keep_old is False). Returns the new key's kid."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(b"rotate\n" if keep_old else b"rotate-drop-old\n")
        await self.process.stdin.drain()
        line = await _read_line(self, "a key rotation")
        kid: str = line["rotated"]
        return kid


async def _read_line(provider: Provider, what: str) -> dict[str, Any]:
    assert provider.process.stdout is not None
    try:
        raw = await asyncio.wait_for(provider.process.stdout.readline(), 2 * TIMEOUT)
    except TimeoutError:
        raise AssertionError(f"no line for {what} from the provider: {provider.log()}") from None
    if not raw:
        code = await asyncio.wait_for(provider.process.wait(), TIMEOUT)
        raise AssertionError(f"the provider exited ({code}) before {what}: {provider.log()}")
    message: dict[str, Any] = json.loads(raw)
    return message


async def _collect(stream: asyncio.StreamReader, into: deque[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode(errors="replace"))


@contextlib.asynccontextmanager
async def oidc_provider(
    clients: list[dict[str, Any]], users: list[dict[str, Any]], *, port: int = 0
) -> AsyncIterator[Provider]:
    """Run the provider on 127.0.0.1 (`port`, 0 for a free one) with these clients
    ({client_id, client_secret, redirect_uris}) and users ({sub, email, name, password,
    email_verified?, hd?, ...extra claims}); stop it at exit. A second provider on the port of a
    stopped one is another issuer instance with fresh keys and no sessions."""
    node = await node_with_dependencies()
    env = {
        **os.environ,
        "PORT": str(port),
        "OIDC_CLIENTS": json.dumps(clients),
        "OIDC_USERS": json.dumps(users),
    }
    env.pop("NODE_OPTIONS", None)
    process = await asyncio.create_subprocess_exec(
        node,
        str(PROVIDER),
        cwd=OIDC,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    provider = Provider("", 0, process, clients, users)
    assert process.stderr is not None
    collector = asyncio.create_task(_collect(process.stderr, provider.stderr))
    try:
        hello = await _read_line(provider, "listening")
        provider.issuer, provider.port = hello["issuer"], int(hello["port"])
        yield provider
    finally:
        if process.returncode is None:
            process.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), TIMEOUT)
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector


# ---- a sign-in without a browser ----------------------------------------------------------


@dataclass(frozen=True)
class Callback:
    """Where the provider sends the browser back: the relying party's redirect_uri with `code`,
    `state` and `iss` (RFC 9207), or `error` and `error_description`. Not yet requested."""

    url: str

    @property
    def params(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.url).query, keep_blank_values=True))

    @property
    def code(self) -> str | None:
        return self.params.get("code")

    @property
    def state(self) -> str | None:
        return self.params.get("state")

    @property
    def iss(self) -> str | None:
        return self.params.get("iss")

    @property
    def error(self) -> str | None:
        return self.params.get("error")

    def with_params(self, **changes: str | None) -> str:
        """The callback URL with some parameters replaced (None removes one), for forgeries."""
        params = self.params
        for key, value in changes.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = value
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(query=urlencode(params)))


_FORM = re.compile(r'<form\b[^>]*\baction="([^"]*)"[^>]*>(.*?)</form>', re.S | re.I)


def login_form_action(response: httpx.Response) -> str | None:
    """The absolute URL the provider's login form posts to, or None when the page has none."""
    if "text/html" not in response.headers.get("content-type", ""):
        return None
    for action, inner in _FORM.findall(response.text):
        if 'name="login"' in inner and 'name="password"' in inner:
            return urljoin(str(response.url), html.unescape(action))
    return None


def _origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    parts = httpx.URL(str(url))
    return parts.scheme, parts.host, parts.port


def _is_callback(source: httpx.URL, target: str) -> bool:
    """A redirect out of the provider carrying the authorization response."""
    query = dict(parse_qsl(urlsplit(target).query))
    return _origin(source) != _origin(target) and ("code" in query or "error" in query)


async def follow_to_callback(
    client: httpx.AsyncClient,
    url: str,
    login: str,
    password: str,
    *,
    method: str = "GET",
) -> Callback:
    """Request `url` (the relying party's /login, or an authorize URL at the provider) and follow
    redirects across both hosts with the client's cookie jar; fill the login form if the
    provider shows it (consent is granted by the provider on its own). Returns the callback
    (a redirect out of the provider with `code` or `error`) without requesting it. Raises
    SignInFailed on a wrong login or password or an error page."""
    response = await client.request(method, url, follow_redirects=False)
    posted = False
    for _ in range(MAX_HOPS):
        if response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if _is_callback(response.url, target):
                return Callback(target)
            response = await client.get(target, follow_redirects=False)
            continue
        action = login_form_action(response)
        if action is None:
            raise SignInFailed("no redirect and no login form", response)
        if posted:
            raise SignInFailed("the provider showed its login form again", response)
        response = await client.post(
            action, data={"login": login, "password": password}, follow_redirects=False
        )
        posted = True
        if response.status_code == 401:
            raise SignInFailed("the provider refused the login or password", response)
    raise SignInFailed(f"more than {MAX_HOPS} hops", response)


async def reach_callback(
    client: httpx.AsyncClient, start_url: str, login: str, password: str
) -> Callback:
    """GET the relying party's `start_url` (its /login), sign in at the provider, and return the
    callback it redirects to, unrequested: a valid `code` and `state` to replay, tamper with or
    hand to another client (login CSRF)."""
    return await follow_to_callback(client, start_url, login, password)


async def sign_in_with_httpx(
    client: httpx.AsyncClient, start_url: str, login: str, password: str
) -> httpx.Response:
    """The whole sign-in: GET `start_url` (the relying party's /login), through the provider's
    login form, then GET the relying party's callback and return its response unfollowed (check
    its Set-Cookie and Location). Raises SignInFailed if the provider refuses the password."""
    callback = await reach_callback(client, start_url, login, password)
    return await client.get(callback.url, follow_redirects=False)


# ---- lower level: an authorization request made by the test itself -------------------------


@dataclass(frozen=True)
class AuthRequest:
    """An authorization request as a relying party makes it: the URL and its secrets."""

    url: str
    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def authorization_request(
    provider: Provider,
    client_id: str,
    redirect_uri: str,
    *,
    scope: str = "openid email profile",
    pkce: bool = True,
    **extra: str,
) -> AuthRequest:
    """A fresh authorization-code request to `provider` (its endpoint is /auth), with a random
    state and nonce and, unless pkce is False, an S256 code challenge. `extra` adds parameters
    (prompt="login", login_hint=...) or overrides any of them."""
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": nonce,
    }
    if pkce:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    params |= extra
    url = f"{provider.issuer}/auth?{urlencode(params)}"
    return AuthRequest(url, params["state"], params["nonce"], verifier, redirect_uri)


async def exchange_code(
    provider: Provider,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    code_verifier: str | None,
) -> httpx.Response:
    """POST the code to the provider's token endpoint (/token) with client_secret_basic; the
    response as it is (200 with id_token and access_token, or 400 with `error`)."""
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if code_verifier is not None:
        data["code_verifier"] = code_verifier
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        return await client.post(
            f"{provider.issuer}/token", data=data, auth=(client_id, client_secret)
        )
