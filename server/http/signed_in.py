"""Who is signed in on this request: the session cookie, checked (server/people/cookie.py) and
looked up (the sign-in and its person in the store). And the cookie itself, set and cleared."""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.responses import Response

from server.errors import AuthError
from server.people.cookie import SESSION_COOKIE, seal, unseal
from server.people.model import Person, SignedIn
from server.session.worker import Worker


def _worker(connection: HTTPConnection) -> Worker:
    worker: Worker = connection.app.state.worker
    return worker


async def signed_in(connection: HTTPConnection) -> tuple[Person, SignedIn] | None:
    """The person and their sign-in, if the cookie names one that lasts."""
    worker = _worker(connection)
    assert worker.settings.secret is not None
    sign_in_id = unseal(worker.settings.secret, connection.cookies.get(SESSION_COOKIE))
    if sign_in_id is None:
        return None
    sign_in = await worker.people.sign_in(sign_in_id)
    if sign_in is None:
        return None
    person = await worker.people.get(sign_in.person)
    return None if person is None else (person, sign_in)


async def person_of(connection: HTTPConnection) -> Person | None:
    found = await signed_in(connection)
    return None if found is None else found[0]


async def require_person(connection: HTTPConnection) -> Person:
    person = await person_of(connection)
    if person is None:
        raise AuthError("sign in first (the session cookie is missing, ended or expired)")
    return person


def secure(worker: Worker) -> bool:
    """Behind TLS the cookies say `Secure`."""
    return worker.settings.base_url.startswith("https://")


def set_session(response: Response, connection: HTTPConnection, sign_in: SignedIn) -> None:
    worker = _worker(connection)
    assert worker.settings.secret is not None
    response.set_cookie(
        SESSION_COOKIE,
        seal(worker.settings.secret, sign_in.id),
        max_age=max(1, int(sign_in.expires - sign_in.created)),
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure(worker),
    )


def clear_session(response: Response, connection: HTTPConnection) -> None:
    worker = _worker(connection)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure(worker)
    )
