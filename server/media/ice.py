"""ICE: which addresses the server offers, which remote candidates it will try, and the
STUN/TURN servers handed to clients (DESIGN §3).

A remote candidate is an address the server will send connectivity checks to. Left open, any
token holder could make the server probe the school's or the data centre's internal network,
so candidates outside the allowed networks are dropped from offers and trickled fragments
before aiortc sees them. Connectivity does not need them when the client can reach the server:
the client's checks arrive from its real address and ICE learns it as peer-reflexive.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aioice.ice

from server.errors import InvalidField

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
KEYWORDS = ("global", "loopback", "private")
# "private": the ranges schools number their own networks from (RFC 1918, carrier-grade NAT,
# IPv6 unique-local), not every range Python calls private (documentation ranges, ...).
PRIVATE: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


@dataclass(frozen=True, slots=True)
class RemotePolicy:
    """The networks a remote candidate may be in."""

    networks: tuple[Network, ...] = ()
    allow_global: bool = False
    allow_private: bool = False

    @classmethod
    def parse(cls, text: str) -> RemotePolicy:
        """A comma-separated list of CIDRs and the keywords global, loopback, private."""
        networks: list[Network] = []
        allow_global = allow_private = False
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            if item == "global":
                allow_global = True
            elif item == "private":
                allow_private = True
            elif item == "loopback":
                networks += [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
            else:
                try:
                    networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    raise InvalidField(
                        f"media_remote_networks: {item!r} is not a network or one of {KEYWORDS}"
                    ) from None
        return cls(tuple(networks), allow_global, allow_private)

    def allows(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False  # an mDNS name: resolving it would itself be a probe
        if self.allow_global and address.is_global:
            return True
        if self.allow_private and any(address in network for network in PRIVATE):
            return True
        return any(address in network for network in self.networks)


def candidate_host(line: str) -> str | None:
    """The connection address of an `a=candidate:` / `candidate:` line, or None if malformed."""
    body = line.split(":", 1)[1] if line.startswith(("a=candidate:", "candidate:")) else ""
    parts = body.split()
    if len(parts) < 8 or parts[6] != "typ":
        return None
    return parts[4]


def filter_candidates(sdp: str, policy: RemotePolicy) -> tuple[str, int]:
    """`sdp` (an offer or a trickle fragment) without candidates outside the policy; returns
    the filtered text and how many were dropped."""
    kept: list[str] = []
    dropped = 0
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            host = candidate_host(line)
            if host is None or not policy.allows(host):
                dropped += 1
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n", dropped


def offer_host_addresses(addresses: Sequence[str]) -> None:
    """Make every peer connection in this process offer exactly `addresses` as host
    candidates; an empty list restores aioice's own choice (every interface but loopback).

    aioice has no option for this; replacing its module-level lookup is what aiortc's own
    tests do. It is process-wide, which matches a worker: one process, one network view.
    """
    chosen = [str(ipaddress.ip_address(a)) for a in addresses]
    if not chosen:
        aioice.ice.get_host_addresses = _aioice_default
        return

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses


_aioice_default = aioice.ice.get_host_addresses


@dataclass(frozen=True, slots=True)
class IceServer:
    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def as_json(self) -> dict[str, object]:
        server: dict[str, object] = {"urls": list(self.urls)}
        if self.username is not None:
            server["username"] = self.username
            server["credential"] = self.credential
        return server

    def links(self) -> list[str]:
        """RFC 9725 §4.6 `Link` header values, one per URL."""
        links = []
        for url in self.urls:
            link = f'<{url}>; rel="ice-server"'
            if self.username is not None and self.credential is not None:
                link += (
                    f'; username="{self.username}"; credential="{self.credential}"'
                    '; credential-type="password"'
                )
            links.append(link)
        return links


def turn_credentials(
    secret: str, user: str, ttl: float, now: float | None = None
) -> tuple[str, str]:
    """The TURN REST API convention coturn implements (`use-auth-secret`): a username of
    `expiry:user` and a password of base64(HMAC-SHA1(secret, username))."""
    expiry = int((now if now is not None else time.time()) + ttl)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers_for(
    urls: Sequence[str], *, user: str, turn_secret: str | None, turn_ttl: float
) -> list[IceServer]:
    """What a client is handed: STUN URLs as they are, TURN URLs with fresh credentials."""
    stun = tuple(u for u in urls if u.startswith(("stun:", "stuns:")))
    turn = tuple(u for u in urls if u.startswith(("turn:", "turns:")))
    servers = [IceServer(stun)] if stun else []
    if turn and turn_secret:
        username, credential = turn_credentials(turn_secret, user, turn_ttl)
        servers.append(IceServer(turn, username, credential))
    return servers
