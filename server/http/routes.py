"""The route table: every URL the server answers, and the handler that serves it."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from server.http import (
    audit,
    auth,
    cycle_report,
    cycles,
    exports,
    health,
    home,
    invites,
    pages,
    people,
    rooms,
    tus,
    videos,
    voice,
    whep,
    whip,
)
from server.http.room_socket import serve_room_socket
from server.http.yjs_socket import serve_yjs_socket


async def room_socket(websocket: WebSocket) -> None:
    await serve_room_socket(websocket, websocket.app.state.worker)


async def yjs_socket(websocket: WebSocket) -> None:
    await serve_yjs_socket(websocket, websocket.app.state.worker)


def routes() -> list[BaseRoute]:
    """A new table for each app: the static files are found where the settings say then."""
    return [
        Route("/", home.index),
        Route("/login", auth.login, methods=["GET"]),
        Route("/auth/callback", auth.callback, methods=["GET"]),
        Route("/logout", auth.logout, methods=["POST"]),
        Route("/auth/link/{secret}", auth.link_page, methods=["GET"]),
        Route("/auth/link/{secret}", auth.use_link, methods=["POST"]),
        Route("/healthz", health.healthz),
        Route("/readyz", health.readyz),
        Route("/metrics", health.metrics),
        Route("/api/rooms", rooms.create_room, methods=["POST"]),
        Route("/api/rooms", rooms.list_rooms, methods=["GET"]),
        Route("/api/rooms/{room}", rooms.get_room, methods=["GET"]),
        Route("/api/rooms/{room}", rooms.update_room, methods=["PATCH"]),
        Route("/api/rooms/{room}/invites", invites.create_invites, methods=["POST"]),
        Route("/api/rooms/{room}/export.{format}", exports.export, methods=["GET"]),
        Route("/api/rooms/{room}/summary", exports.room_summary, methods=["GET"]),
        Route("/api/rooms/{room}/talk", voice.talk, methods=["GET"]),
        Route("/api/rooms/{room}/talk.csv", voice.talk_csv, methods=["GET"]),
        Route("/api/audit", audit.read_audit, methods=["GET"]),
        Route("/api/me", people.me, methods=["GET"]),
        Route("/api/me/rooms", home.my_rooms, methods=["GET"]),
        Route("/api/cycles", cycles.create, methods=["POST"]),
        Route("/api/cycles", cycles.list_mine, methods=["GET"]),
        Route("/api/cycles/{cycle}", cycles.get_one, methods=["GET"]),
        Route("/api/cycles/{cycle}/accept", cycles.accept, methods=["POST"]),
        Route("/api/cycles/{cycle}/close", cycles.close, methods=["POST"]),
        Route("/api/cycles/{cycle}/sessions", cycles.add_session, methods=["POST"]),
        Route("/api/cycles/{cycle}/lessons", cycles.add_lesson, methods=["POST"]),
        Route("/api/cycles/{cycle}/scores", cycles.score, methods=["PUT"]),
        Route("/api/cycles/{cycle}/progress", cycles.cycle_progress, methods=["GET"]),
        Route("/api/cycles/{cycle}/notes", cycles.notes, methods=["GET"]),
        Route("/api/cycles/{cycle}/report.html", cycle_report.report_html, methods=["GET"]),
        Route("/api/cycles/{cycle}/share", cycles.share, methods=["POST"]),
        Route("/api/cycles/{cycle}/export.json", cycles.report, methods=["GET"]),
        Route("/api/people/{person}/progress", cycles.person_progress, methods=["GET"]),
        Route("/api/rooms/{room}/token", home.room_token, methods=["POST"]),
        Route("/rooms/{room}/join", home.join, methods=["GET"]),
        Route("/api/people", people.find, methods=["GET"]),
        Route("/api/people/{person}", people.change_roles, methods=["PATCH"]),
        Route("/api/frameworks", exports.list_frameworks, methods=["GET"]),
        Route("/api/frameworks/{id}", exports.get_framework, methods=["GET"]),
        Route("/api/videos", videos.create_video, methods=["POST"]),
        Route("/api/videos", videos.list_videos, methods=["GET"]),
        Route("/api/videos", tus.options, methods=["OPTIONS"]),
        Route("/api/videos/{video}", videos.get_video, methods=["GET"]),
        Route("/api/videos/{video}", videos.delete_video, methods=["DELETE"]),
        Route("/api/videos/{video}/download", videos.download_video, methods=["GET"]),
        Route("/api/videos/{video}", videos.change_video, methods=["PATCH"]),
        Route("/api/videos/{video}/upload", tus.head, methods=["HEAD"]),
        Route("/api/videos/{video}/upload", tus.patch, methods=["PATCH"]),
        Route("/api/videos/{video}/upload", tus.terminate, methods=["DELETE"]),
        Route("/api/videos/{video}/upload", tus.options, methods=["OPTIONS"]),
        Route("/r/{room}", pages.session_page),
        Route("/admin", pages.admin_page),
        Route("/c/{cycle}", pages.cycle_page),
        Route("/g/{group}", pages.group_page),
        Route("/library", pages.library_page),
        Route("/clips/{clip}", pages.clip_page),
        Mount("/static", app=pages.BuiltFiles(), name="static"),
        Route("/rooms/{room}/whep", whep.watch, methods=["POST"]),
        Route("/rooms/{room}/whep", whep.options, methods=["OPTIONS"]),
        Route("/rooms/{room}/whep/{session}", whep.trickle, methods=["PATCH"]),
        Route("/rooms/{room}/whep/{session}", whep.leave, methods=["DELETE"]),
        Route("/rooms/{room}/whip", whip.publish, methods=["POST"]),
        Route("/rooms/{room}/whip", whep.options, methods=["OPTIONS"]),
        Route("/rooms/{room}/whip/{session}", whep.trickle, methods=["PATCH"]),
        Route("/rooms/{room}/whip/{session}", whep.leave, methods=["DELETE"]),
        Route("/rooms/{room}/talkback", whip.talk, methods=["POST"]),
        Route("/rooms/{room}/talkback", whep.options, methods=["OPTIONS"]),
        Route("/rooms/{room}/talkback/{session}", whep.trickle, methods=["PATCH"]),
        Route("/rooms/{room}/talkback/{session}", whep.leave, methods=["DELETE"]),
        Route("/rooms/{room}/voice", voice.join, methods=["POST"]),
        Route("/rooms/{room}/voice", whep.options, methods=["OPTIONS"]),
        Route("/rooms/{room}/voice/{session}", whep.trickle, methods=["PATCH"]),
        Route("/rooms/{room}/voice/{session}", whep.leave, methods=["DELETE"]),
        WebSocketRoute("/rooms/{room}/ws", room_socket),
        WebSocketRoute("/yjs/{room}", yjs_socket),
    ]
