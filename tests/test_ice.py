"""ICE rules: which remote candidates the server will try, and the credentials it hands out."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from server.errors import InvalidField
from server.media.ice import (
    RemotePolicy,
    candidate_host,
    filter_candidates,
    ice_servers_for,
    turn_credentials,
)

OFFER = "\r\n".join(
    [
        "v=0",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
        "a=candidate:2 1 udp 2130706431 10.1.2.3 5000 typ host",
        "a=candidate:3 1 udp 1694498815 203.0.113.9 6000 typ srflx raddr 10.1.2.3 rport 5000",
        "a=candidate:4 1 udp 1694498815 8.8.4.4 6000 typ srflx raddr 0.0.0.0 rport 0",
        "a=candidate:5 1 udp 2130706431 3f8e2c1a-1111-2222-3333-444455556666.local 5000 typ host",
        "a=candidate:6 1 udp 2130706431 ::1 5000 typ host",
        "a=candidate:7 broken",
        "",
    ]
)


def hosts(sdp: str) -> list[str | None]:
    return [candidate_host(line) for line in sdp.splitlines() if line.startswith("a=candidate")]


@pytest.mark.parametrize(
    ("policy", "kept"),
    [
        ("loopback", ["127.0.0.1", "::1"]),
        # 203.0.113.0/24 is a documentation range: not global.
        ("global", ["8.8.4.4"]),
        ("global,loopback", ["127.0.0.1", "8.8.4.4", "::1"]),
        ("private", ["10.1.2.3"]),
        ("10.0.0.0/8, 203.0.113.0/24", ["10.1.2.3", "203.0.113.9"]),
        ("", []),
    ],
)
def test_remote_candidates_outside_the_policy_are_dropped(policy: str, kept: list[str]) -> None:
    sdp, dropped = filter_candidates(OFFER, RemotePolicy.parse(policy))
    assert hosts(sdp) == kept
    assert dropped == 7 - len(kept)  # the mDNS name and the broken line always go
    assert "m=video 9" in sdp


def test_a_bad_network_setting_is_named() -> None:
    with pytest.raises(InvalidField, match=r"'10\.0\.0\.0/33'"):
        RemotePolicy.parse("loopback,10.0.0.0/33")


def test_turn_rest_credentials_follow_coturns_convention() -> None:
    username, password = turn_credentials("s3cret", "user:ann", ttl=600, now=1_000_000)
    assert username == "1000600:user:ann"
    digest = hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest()
    assert password == base64.b64encode(digest).decode()


def test_ice_servers_handed_to_clients() -> None:
    urls = ["stun:stun.example.org:3478", "turn:turn.example.org:3478?transport=udp"]
    servers = ice_servers_for(urls, user="user:ann", turn_secret="s3cret", turn_ttl=60)
    assert servers[0].as_json() == {"urls": ["stun:stun.example.org:3478"]}
    turn = servers[1].as_json()
    assert turn["urls"] == ["turn:turn.example.org:3478?transport=udp"]
    assert str(turn["username"]).endswith(":user:ann")
    (link,) = servers[1].links()
    assert link.startswith('<turn:turn.example.org:3478?transport=udp>; rel="ice-server"')
    assert 'credential-type="password"' in link
    # Without a secret, TURN URLs are not handed out: they would not work.
    no_secret = ice_servers_for(urls, user="u", turn_secret=None, turn_ttl=60)
    assert [s.urls for s in no_secret] == [("stun:stun.example.org:3478",)]
