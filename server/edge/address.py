"""Which address a request comes from. Behind nginx the peer is the proxy; only a proxy the
deployment names (`trusted_proxies`) may tell us the client's address in X-Forwarded-For,
otherwise any client could claim any address and slip past the per-address limits."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from server.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"


def parse_networks(text: str) -> tuple[Network, ...]:
    """`trusted_proxies`: comma-separated addresses or networks (`10.0.0.5, 10.1.0.0/16`)."""
    networks: list[Network] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"COCOACH_TRUSTED_PROXIES: {item!r} is not an address or network"
            ) from None
    return tuple(networks)


def _trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy; then the nearest
    address in X-Forwarded-For that is not itself a trusted proxy (read right to left, since
    each proxy appends the address it saw and a client can write anything at the left)."""
    address = peer or UNKNOWN
    if not trusted or forwarded_for is None or not _trusted(address, trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            return address  # a malformed hop: trust nothing further left
        if not _trusted(address, trusted):
            return address
    return address
