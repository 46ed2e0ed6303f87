"""The one exception root.

Every error knows whose fault it is (the client's or ours) and the code a client can act on,
so the shells never have to guess what to send: a WebSocket `error` frame, a close code, or an
HTTP status all come from the error itself.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """WebSocket close codes we send; 4000-4999 is the application range (RFC 6455 §7.4.2)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    INTERNAL = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    TOKEN_MISSING = 4001
    TOKEN_INVALID = 4002
    TOKEN_EXPIRED = 4003
    TOKEN_WRONG_ROOM = 4004
    TOKEN_ROLE_UNKNOWN = 4005
    ORIGIN_REFUSED = 4006
    ROOM_NOT_FOUND = 4404
    FORBIDDEN = 4403
    FLOOD = 4029
    SLOW_CONSUMER = 4030
    REPLACED = 4031
    AUTH_RATE_LIMITED = 4429


class CocoachError(Exception):
    """Root of every error we raise on purpose."""

    code: str = "internal"
    http_status: int = 500
    close_code: CloseCode = CloseCode.INTERNAL
    client_fault: bool = False

    def __init__(self, message: str, *, ref: str | int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.ref = ref


class ClientError(CocoachError):
    """Something the client sent is wrong; the connection goes on."""

    code = "bad_request"
    http_status = 400
    close_code = CloseCode.NORMAL
    client_fault = True


class MalformedFrame(ClientError):
    code = "malformed"


class UnknownType(ClientError):
    code = "unknown_type"


class InvalidField(ClientError):
    code = "invalid_field"


class FrameTooLarge(ClientError):
    code = "frame_too_large"
    http_status = 413


class RateLimited(ClientError):
    code = "rate_limited"
    http_status = 429


class LimitedFor(RateLimited):
    """A limit that lifts by itself: the client is told when to come back (Retry-After)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))


class AuthRateLimited(LimitedFor):
    """Too many failed authentications from one client address."""

    code = "auth_rate_limited"
    close_code = CloseCode.AUTH_RATE_LIMITED


class UploadRateLimited(LimitedFor):
    """Too many uploads started from one client address."""

    code = "upload_rate_limited"


class TooManyUploads(LimitedFor):
    """This worker is receiving as many uploads at once as its settings allow."""

    code = "too_many_uploads"


class Forbidden(ClientError):
    code = "forbidden"
    http_status = 403
    close_code = CloseCode.FORBIDDEN


class OriginRefused(Forbidden):
    """A browser page from an origin the deployment does not allow opened a WebSocket."""

    code = "origin_refused"
    close_code = CloseCode.ORIGIN_REFUSED


class NotFound(ClientError):
    code = "not_found"
    http_status = 404


class RoomNotFound(NotFound):
    code = "room_not_found"
    close_code = CloseCode.ROOM_NOT_FOUND


class Conflict(ClientError):
    code = "conflict"
    http_status = 409


class PublisherBusy(Conflict):
    """Someone else publishes this room's live lesson, or speaks on its talk-back."""

    code = "publisher_busy"


class NotLive(Conflict):
    code = "not_live"


class CamerasFull(Conflict):
    """The room's conversation already carries its most cameras (docs/conversation.md)."""

    code = "cameras_full"


class NoSpeaking(Forbidden):
    """This member may not talk in the room's conversation (an observer the coach has not
    let speak)."""

    code = "may_not_speak"


class AuthError(ClientError):
    """The credentials are wrong: refused before anything else happens."""

    code = "unauthorized"
    http_status = 401
    close_code = CloseCode.TOKEN_INVALID


class TokenMissing(AuthError):
    code = "token_missing"
    close_code = CloseCode.TOKEN_MISSING


class TokenInvalid(AuthError):
    code = "token_invalid"
    close_code = CloseCode.TOKEN_INVALID


class TokenExpired(AuthError):
    code = "token_expired"
    close_code = CloseCode.TOKEN_EXPIRED


class TokenWrongRoom(AuthError):
    code = "token_wrong_room"
    http_status = 403
    close_code = CloseCode.TOKEN_WRONG_ROOM


class TokenRoleUnknown(AuthError):
    code = "token_role_unknown"
    close_code = CloseCode.TOKEN_ROLE_UNKNOWN


class ServiceUnavailable(CocoachError):
    """A backend we depend on (Redis, the store) cannot be reached right now."""

    code = "unavailable"
    http_status = 503
    close_code = CloseCode.TRY_AGAIN_LATER


class StaleHome(CocoachError):
    """A room's home wrote after another worker took its lease (it was cut off from Redis):
    the write is refused and the home stops acting for the room (server/sync/fence.py)."""

    code = "stale_home"
    http_status = 503
    close_code = CloseCode.SERVICE_RESTART


class ConfigError(CocoachError):
    """The deployment's settings are wrong; the server refuses to start."""

    code = "config"


class BadSdp(ClientError):
    """An SDP offer or trickle fragment that cannot be used (WHIP/WHEP)."""

    code = "bad_sdp"


class UnsupportedMediaType(ClientError):
    code = "unsupported_media_type"
    http_status = 415


class NoVideo(ClientError):
    """The room has no lesson to watch, or its lesson is not ready yet."""

    code = "no_video"
    http_status = 409


class ConsentMissing(ClientError):
    """The room's video is not covered by consent: it is not shown until an admin records
    consent (`PATCH /api/videos/{video}`)."""

    code = "consent_missing"
    http_status = 403
    close_code = CloseCode.FORBIDDEN


class MediaFull(CocoachError):
    """This worker serves as many viewers as its settings allow."""

    code = "media_full"
    http_status = 503


class NotAVideo(ClientError):
    """An upload that cannot be read as a video (the probe says why)."""

    code = "not_a_video"
    http_status = 415


class TooLarge(ClientError):
    """An upload over `max_upload_bytes`, or past the length it declared."""

    code = "too_large"
    http_status = 413


class UploadBusy(ClientError):
    """Another request is writing to this upload right now (tus: 423 Locked)."""

    code = "upload_busy"
    http_status = 423


class UnsupportedVersion(ClientError):
    """A tus client speaking a version of the protocol we do not."""

    code = "unsupported_version"
    http_status = 412


class InsufficientStorage(CocoachError):
    """The library's disk has no room for an upload of that size."""

    code = "insufficient_storage"
    http_status = 507


class RelayedError(CocoachError):
    """An error raised on the room's home worker, carried back to the worker that asked."""

    def __init__(self, code: str, message: str, http_status: int) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.client_fault = http_status < 500


class OrgRequired(AuthError):
    """Organisations are configured and the token names none (docs/organisations.md)."""

    code = "org_required"
    http_status = 403
    close_code = CloseCode.FORBIDDEN


class OrgUnknown(ClientError):
    """An organisation that COCOACH_ORGS does not list, given to the API or CLI."""

    code = "org_unknown"
    http_status = 400
    close_code = CloseCode.FORBIDDEN


class TokenOrgUnknown(OrgUnknown):
    """A token whose `org` claim names no organisation of this server."""

    http_status = 403


class OrgForbidden(Forbidden):
    """The caller's organisation does not own the room and the room is not shared with it."""

    code = "org_forbidden"


class ShareOutsideTrust(ClientError):
    """A room may be shared only with organisations of its own trust."""

    code = "share_outside_trust"
    http_status = 400


class DownloadDisabled(Forbidden):
    """Videos leave the server only as WebRTC media unless COCOACH_ALLOW_DOWNLOAD is set."""

    code = "download_disabled"
