"""Which pages may open our WebSockets. A browser sends the page's origin with every WebSocket
handshake and does not apply CORS to it, so without this check any web page a signed-in user
visits could open a room socket with a token it got hold of, or ride a cookie later."""

from __future__ import annotations

from urllib.parse import urlsplit

from server.errors import ConfigError


def parse_origins(text: str, public_url: str | None) -> frozenset[str]:
    """`allowed_origins` (comma-separated `scheme://host[:port]`), plus `public_url`'s origin."""
    origins = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        normal = normalise(item)
        if normal is None:
            raise ConfigError(
                f"COCOACH_ALLOWED_ORIGINS: {item!r} is not an origin like https://host"
            )
        origins.add(normal)
    if public_url:
        normal = normalise(public_url)
        if normal is not None:
            origins.add(normal)
    return frozenset(origins)


def normalise(origin: str) -> str | None:
    """`scheme://host[:port]` in lower case without a default port, or None if it is not one."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def same_host(origin: str, host: str | None) -> bool:
    """The page came from the address the socket was opened on. The scheme is not compared:
    behind a proxy that ends TLS the worker sees http while the page was https."""
    if host is None:
        return False
    parts = urlsplit(origin)
    netloc = parts.netloc.lower()
    host = host.strip().lower()
    if netloc == host:
        return True
    default = {"http": ":80", "https": ":443"}.get(parts.scheme, "")
    return netloc + default == host or netloc == host.removesuffix(default)


def origin_allowed(origin: str | None, host: str | None, allowed: frozenset[str]) -> bool:
    """No Origin header: not a browser (aiortc, pycrdt, node's y-websocket, OBS), which can
    send any header it likes anyway, so the token alone decides. A browser's page must be on
    our own host or on the allow-list; `null` (a file or sandboxed page) never is."""
    if origin is None:
        return True
    normal = normalise(origin)
    if normal is None:
        return False
    return normal in allowed or same_host(normal, host)
