"""Signing in and out (docs/people.md).

`GET /login` starts an OpenID Connect sign-in at the school's identity provider, `GET
/auth/callback` finishes it, `POST /logout` ends the sign-in. Without an identity provider,
people sign in with one-time links (`cocoach login-link`): `GET /auth/link/{secret}` shows a
button, and only its `POST` uses the link, so that a mail scanner that opens links does not
spend it. Every refusal is a page that says why, with status 401 so that the failed-sign-in
limiter counts it per address, and an audit event that never carries a token or a code.
"""

from __future__ import annotations

import html
import logging
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from server.audit import remote_of
from server.errors import ConfigError, NotFound
from server.http.request import worker_of
from server.http.signed_in import clear_session, set_session, signed_in
from server.people.model import Person
from server.people.oidc import SignInErrors, person_claims
from server.people.rules import parse_domains, school_of
from server.session.worker import Worker
from server.sync.audit import Actor

log = logging.getLogger(__name__)

MAX_NEXT = 500
NEXT_KEY = "next"
PROVIDER_KEY = "provider"


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A small page of our own: no script, nothing from elsewhere."""
    return HTMLResponse(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)} · cocoach</title>"
        "<style>body{font:16px system-ui,sans-serif;max-width:34em;margin:4em auto;padding:0 1em}"
        "button,.button{font:inherit;padding:.5em 1em}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of this site only (no open redirect)."""
    if (
        not value
        or len(value) > MAX_NEXT
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 32 for c in value)
    ):
        return "/"
    return value


def refused(worker: Worker, request: Request, why: str, *, status: int = 401) -> HTMLResponse:
    worker.audit.record(
        "person.sign_in_failed", Actor(sub="unknown"), remote=remote_of(request), reason=why
    )
    log.info("sign-in refused: %s", why)
    again = "<p><a href='/'>Back to the sign-in page</a></p>"
    return page("You are not signed in", f"<p>{html.escape(why)}</p>{again}", status)


def sign_in_page(worker: Worker, request: Request, note: str = "") -> HTMLResponse:
    parts = [f"<p>{html.escape(note)}</p>"] if note else []
    next_path = safe_next(request.query_params.get("next"))
    for provider in worker.providers.all:
        query = urlencode({"provider": provider.name, "next": next_path})
        target = html.escape(f"/login?{query}", quote=True)
        label = html.escape(provider.label)
        parts.append(f"<p><a class='button' href='{target}'>Sign in with {label}</a></p>")
    parts.append(
        "<p>Or use the one-time sign-in link your school's IT staff gave you"
        " (<code>cocoach login-link</code>).</p>"
    )
    return page("Sign in to cocoach", "".join(parts))


async def login(request: Request) -> Response:
    """Start a sign-in at `?provider=` (the first one if not named)."""
    worker = worker_of(request)
    if not worker.providers.configured:
        return sign_in_page(worker, request, "This server has no identity provider set up.")
    provider = worker.providers.get(request.query_params.get("provider"))
    if provider is None:
        return sign_in_page(worker, request, "There is no such identity provider here.")
    request.session.clear()  # a sign-in under way starts afresh
    request.session[NEXT_KEY] = safe_next(request.query_params.get("next"))
    request.session[PROVIDER_KEY] = provider.name
    redirect_uri = f"{worker.settings.base_url}/auth/callback"
    client = worker.providers.client(provider)
    response: Response = await client.authorize_redirect(request, redirect_uri)
    return response


async def callback(request: Request) -> Response:
    worker = worker_of(request)
    provider = worker.providers.get(request.session.get(PROVIDER_KEY))
    if not worker.providers.configured:
        raise NotFound("this server has no identity provider")
    if provider is None or PROVIDER_KEY not in request.session:
        return refused(worker, request, "no sign-in was under way in this browser")
    try:
        token = await worker.providers.client(provider).authorize_access_token(request)
    except SignInErrors as exc:
        # Authlib's message names the check that failed (state, nonce, issuer...): no secret.
        return refused(worker, request, f"the sign-in could not be completed: {exc}")
    finally:
        next_path = safe_next(request.session.pop(NEXT_KEY, None))
        request.session.pop(PROVIDER_KEY, None)
    userinfo = token.get("userinfo") or {}
    try:
        domains = parse_domains(provider.org_domains or "")
    except ConfigError as exc:
        return refused(worker, request, str(exc), status=500)
    school = school_of(userinfo, claim=provider.org_claim, domains=domains, orgs=worker.orgs)
    subject, name, email = person_claims(userinfo)
    if school is None:
        return refused(
            worker,
            request,
            f"your account ({email or subject}) is not one of a school of this trust, so "
            "cocoach cannot tell which school you are at. Ask your school's IT staff.",
            status=403,
        )
    issuer = provider.issuer.rstrip("/")
    person = await worker.people.signed_in_with(issuer, subject, name=name, email=email, org=school)
    return await start_session(worker, request, person, f"oidc:{issuer}", next_path)


async def start_session(
    worker: Worker, request: Request, person: Person, how: str, next_path: str = "/"
) -> Response:
    lifetime = worker.settings.sign_in_hours * 3600
    sign_in = await worker.people.open_sign_in(person, lifetime, how)
    worker.audit.record(
        "person.sign_in", actor_of_person(person), remote=remote_of(request), how=how
    )
    response = RedirectResponse(next_path, status_code=303)
    set_session(response, request, sign_in)
    return response


def actor_of_person(person: Person) -> Actor:
    return Actor(sub=person.id, name=person.name, role=",".join(person.roles), org=person.org)


async def logout(request: Request) -> Response:
    worker = worker_of(request)
    found = await signed_in(request)
    if found is not None:
        person, sign_in = found
        await worker.people.close_sign_in(sign_in.id)
        worker.audit.record("person.sign_out", actor_of_person(person), remote=remote_of(request))
    response = RedirectResponse("/", status_code=303)
    clear_session(response, request)
    return response


async def link_page(request: Request) -> Response:
    secret = html.escape(request.path_params["secret"], quote=True)
    return page(
        "Sign in to cocoach",
        f"<form method='post' action='/auth/link/{secret}'>"
        "<p><button type='submit'>Sign in</button></p></form>",
    )


async def use_link(request: Request) -> Response:
    worker = worker_of(request)
    try:
        person = await worker.people.use_link(request.path_params["secret"])
    except NotFound as exc:
        return refused(worker, request, exc.message)
    return await start_session(worker, request, person, "link")
