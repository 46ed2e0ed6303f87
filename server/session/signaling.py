"""WHEP and WHIP signaling from any worker to the room's home (DESIGN §1).

A request that lands on the home is served in place. One that lands elsewhere is published on
the room's media channel, which only the home subscribes to, and the answer comes back on the
asking worker's own reply channel. Media then flows straight between the viewer and the home:
only the SDP crosses Redis.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import assert_never

import msgspec

from server.codec import encode
from server.errors import CocoachError, RelayedError, ServiceUnavailable, StaleHome
from server.media.room_media import RoomMedia
from server.media_wire import (
    LeaveRequest,
    MediaReply,
    MediaRequest,
    PublishRequest,
    TrickleRequest,
    VoiceRequest,
    WatchRequest,
    decode_media_reply,
    decode_media_request,
)
from server.session.context import WorkerContext
from server.sync.audit import Actor
from server.sync.keys import media_channel, reply_channel

log = logging.getLogger(__name__)

Reply = Callable[[str, bytes], Awaitable[None]]  # publish (channel, message) as the home


def _actor(request: WatchRequest | PublishRequest | VoiceRequest) -> Actor:
    """Who asked, for the audit log at the home."""
    return Actor(sub=request.user, name=request.name, role=request.role, org=request.org)


async def serve(media: RoomMedia, request: MediaRequest) -> MediaReply:
    """Run one request against the room's media at its home."""
    try:
        match request:
            case WatchRequest():
                session, answer = await media.watch(
                    user=request.user,
                    name=request.name,
                    offer=request.offer,
                    rendition=request.rendition,
                    source=request.source,
                    actor=_actor(request),
                    remote=request.remote,
                    member=request.member,
                )
                return MediaReply(request.id, session=session, answer=answer)
            case VoiceRequest():
                session, answer = await media.voice(
                    user=request.user,
                    name=request.name,
                    role=request.role,
                    offer=request.offer,
                    speak=request.speak,
                    actor=_actor(request),
                    remote=request.remote,
                )
                return MediaReply(request.id, session=session, answer=answer)
            case PublishRequest():
                session, answer = await media.publish(
                    user=request.user,
                    name=request.name,
                    offer=request.offer,
                    talkback=request.talkback,
                    earpiece=request.earpiece,
                    actor=_actor(request),
                    remote=request.remote,
                )
                return MediaReply(request.id, session=session, answer=answer)
            case TrickleRequest():
                await media.trickle(request.session, request.user, request.fragment)
                return MediaReply(request.id)
            case LeaveRequest():
                await media.leave(request.session, request.user)
                return MediaReply(request.id)
            case _:
                assert_never(request)
    except CocoachError as error:
        return MediaReply(
            request.id, error_code=error.code, error_message=error.message, status=error.http_status
        )


class MediaRouter:
    """Each worker's end of signaling: sends requests to the home, and serves them as a home."""

    def __init__(self, context: WorkerContext) -> None:
        self.context = context
        self._pending: dict[str, asyncio.Future[MediaReply]] = {}

    async def start(self) -> None:
        """Nothing to do: a request's reply channel is subscribed while it waits."""

    async def stop(self) -> None:
        """Nothing to do: no request waits once the worker stops."""

    # ---- asking -------------------------------------------------------------------------

    async def ask(self, request: MediaRequest) -> MediaReply:
        """Serve `request` here if this worker is the room's home, else forward it there.
        Raises the home's error as it is."""
        record = await self.context.room_record(request.room)
        home = await self.context.home_of(record)
        if home is None:
            raise ServiceUnavailable(f"room {request.room!r} has no home yet; try again")
        if home == self.context.id:
            media = self.context.home_media(request.room)
            if media is None:
                raise ServiceUnavailable(f"room {request.room!r} is changing home; try again")
            reply = await serve(media, request)
        else:
            reply = await self._forward(request)
        if reply.error_code is not None:
            raise RelayedError(reply.error_code, reply.error_message or "", reply.status)
        return reply

    async def _forward(self, request: MediaRequest) -> MediaReply:
        future: asyncio.Future[MediaReply] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = future
        replies = reply_channel(self.context.id, request.room)
        # Subscribed while any request to the room waits (the broker counts them).
        await self.context.broker.subscribe(replies, self._on_reply)
        try:
            await self.context.broker.publish(media_channel(request.room), encode(request))
            async with asyncio.timeout(self.context.settings.media_rpc_timeout):
                return await future
        except TimeoutError:
            raise ServiceUnavailable(
                f"the home of room {request.room!r} did not answer; try again"
            ) from None
        finally:
            self._pending.pop(request.id, None)
            await self.context.broker.unsubscribe(replies, self._on_reply)

    def _on_reply(self, data: bytes) -> None:
        try:
            reply = decode_media_reply(data)
        except msgspec.DecodeError as exc:
            log.error("undecodable media reply: %s", exc)
            return
        future = self._pending.get(reply.id)
        if future is not None and not future.done():
            future.set_result(reply)

    # ---- serving, as a room's home ------------------------------------------------------

    def on_request(self, media: RoomMedia, reply: Reply, data: bytes) -> None:
        """A request for the room's home (here); `reply` publishes the answer, fenced like
        every other write of the home, so a home that lost the room cannot answer for it."""
        try:
            request = decode_media_request(data)
        except msgspec.DecodeError as exc:
            log.error("room %s: undecodable media request: %s", media.room_id, exc)
            return
        self.context.spawn(self._answer(media, reply, request), f"media {media.room_id}")

    async def _answer(self, media: RoomMedia, reply: Reply, request: MediaRequest) -> None:
        answer = await serve(media, request)
        try:
            await reply(reply_channel(request.reply_to, request.room), encode(answer))
        except StaleHome as exc:
            log.warning("media answer not sent: %s", exc)


def new_request_id() -> str:
    return secrets.token_hex(8)
