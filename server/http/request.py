"""What every HTTP handler needs of a request: the worker serving it, the admin key, a
bounded body, a typed JSON body. The CLI never needs these, so they live with the routes."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from starlette.requests import Request

from server.errors import AuthError, ClientError, FrameTooLarge, InvalidField
from server.http.admission import bearer, is_admin
from server.session.worker import Worker

MAX_BODY_BYTES = 64 * 1024
T = TypeVar("T")


def worker_of(request: Request) -> Worker:
    worker: Worker = request.app.state.worker
    return worker


def check_admin(request: Request, worker: Worker) -> None:
    given = bearer(request.headers)
    if not given:
        raise AuthError("this endpoint needs the admin key as Authorization: Bearer")
    if not is_admin(worker, given):
        raise AuthError("the admin key is wrong")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused as soon as it passes `limit`: a huge one must not fill memory."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise FrameTooLarge(f"the body is over the limit of {limit} bytes")
    return bytes(body)


async def read_json(request: Request, cls: type[T]) -> T:
    body = await read_body(request, MAX_BODY_BYTES)
    try:
        return msgspec.json.decode(body, type=cls)
    except msgspec.ValidationError as exc:
        raise InvalidField(f"body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ClientError(f"body is not valid JSON: {exc}") from None
