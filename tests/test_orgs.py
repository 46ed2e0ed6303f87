"""The organisation model (server/orgs.py), table-driven without an event loop, and the SQLite
migration that gives old records the default organisation."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from server.errors import (
    CocoachError,
    ConfigError,
    InvalidField,
    OrgForbidden,
    OrgRequired,
    OrgUnknown,
    ShareOutsideTrust,
    TokenOrgUnknown,
)
from server.orgs import Orgs
from server.settings import Settings
from server.sync.sqlite_store import SqliteStore
from server.sync.store import RoomRecord, VideoRecord

TEXT = "north: ashby, brook; south: carlton"
ORGS = Orgs.parse(TEXT, "ashby")
NONE = Orgs.parse("", "default")


def test_trusts_and_their_schools_are_organisations() -> None:
    assert ORGS.configured and not NONE.configured
    assert dict(ORGS.trust) == {
        "north": "north",
        "ashby": "north",
        "brook": "north",
        "south": "south",
        "carlton": "south",
    }


@pytest.mark.parametrize(
    ("text", "default", "says"),
    [
        ("north ashby", "ashby", "is not 'trust: school"),
        ("north: ashby; south: ashby", "ashby", "names 'ashby' twice"),
        ("north: ashby; north: brook", "ashby", "names 'north' twice"),
        ("north: ash by", "ashby", "'ash by' is not an organisation id"),
        ("north: ashby", "default", "COCOACH_DEFAULT_ORG 'default' is not in COCOACH_ORGS"),
        ("", "no good", "is not an organisation id"),
    ],
)
def test_a_bad_orgs_setting_is_refused_naming_the_problem(
    text: str, default: str, says: str
) -> None:
    with pytest.raises(ConfigError, match=says):
        Orgs.parse(text, default)


def test_a_token_without_org_means_the_one_org_only_when_none_are_configured() -> None:
    assert NONE.of_token(None) == "default"
    assert NONE.of_token("anything") == "default"  # a label only
    assert ORGS.of_token("brook") == "brook"
    with pytest.raises(OrgRequired) as missing:
        ORGS.of_token(None)
    assert (missing.value.code, missing.value.http_status) == ("org_required", 403)
    with pytest.raises(TokenOrgUnknown) as unknown:
        ORGS.of_token("elsewhere")
    assert (unknown.value.code, unknown.value.http_status) == ("org_unknown", 403)


def test_records_without_org_belong_to_the_default() -> None:
    assert ORGS.owning(None) == "ashby"
    assert ORGS.owning("brook") == "brook"
    assert NONE.owning("north") == "default"


@pytest.mark.parametrize(
    ("room_org", "shared", "expected"),
    [
        ("ashby", ["brook"], ("brook",)),
        ("ashby", ["north", "brook", "brook"], ("brook", "north")),
        ("ashby", [], ()),
        ("carlton", ["south"], ("south",)),
    ],
)
def test_sharing_within_the_trust(room_org: str, shared: list[str], expected: tuple[str]) -> None:
    assert ORGS.check_shared(room_org, shared) == expected


@pytest.mark.parametrize(
    ("room_org", "shared", "error", "code"),
    [
        ("ashby", ["carlton"], ShareOutsideTrust, "share_outside_trust"),
        ("ashby", ["south"], ShareOutsideTrust, "share_outside_trust"),
        ("ashby", ["elsewhere"], OrgUnknown, "org_unknown"),
        ("ashby", ["ashby"], InvalidField, "invalid_field"),
        ("ashby", [f"x{i}" for i in range(21)], InvalidField, "invalid_field"),
    ],
)
def test_sharing_outside_the_trust_is_refused(
    room_org: str, shared: list[str], error: type[CocoachError], code: str
) -> None:
    with pytest.raises(error) as refused:
        ORGS.check_shared(room_org, shared)
    assert refused.value.code == code


def test_without_orgs_there_is_no_one_to_share_with() -> None:
    with pytest.raises(OrgUnknown, match="no organisations"):
        NONE.check_shared("default", ["brook"])
    assert NONE.check_shared("default", []) == ()


def test_who_a_room_admits() -> None:
    assert ORGS.admits("ashby", (), "ashby")
    assert not ORGS.admits("ashby", (), "brook")
    assert ORGS.admits("ashby", ("brook",), "brook")
    assert not ORGS.admits("ashby", ("brook",), "north"), "the trust is not implicitly in"
    assert ORGS.admits(None, (), "ashby"), "an old room is the default organisation's"
    # A school moved to another trust since the room was shared is no longer admitted.
    moved = Orgs.parse("north: ashby; south: brook", "ashby")
    assert not moved.admits("ashby", ("brook",), "brook")
    assert NONE.admits("north", (), "default")
    with pytest.raises(OrgForbidden) as refused:
        ORGS.check_admits("r1", "ashby", (), "carlton")
    assert (refused.value.code, refused.value.http_status) == ("org_forbidden", 403)


def test_api_org_fields() -> None:
    assert ORGS.check_org(None, "org") == "ashby"
    assert ORGS.check_org("brook", "org") == "brook"
    with pytest.raises(OrgUnknown) as unknown:
        ORGS.check_org("elsewhere", "org")
    assert unknown.value.http_status == 400
    assert NONE.check_org("north", "org") == "north"  # a label, kept as given
    assert NONE.check_org(None, "org") is None


def test_settings_read_orgs_and_the_download_switch_from_the_environment() -> None:
    settings = Settings.from_env(
        {"COCOACH_ORGS": TEXT, "COCOACH_DEFAULT_ORG": "ashby", "COCOACH_ALLOW_DOWNLOAD": "yes"}
    )
    assert (settings.orgs, settings.default_org, settings.allow_download) == (TEXT, "ashby", True)
    assert not Settings.from_env({}).allow_download
    with pytest.raises(ConfigError, match="'maybe' is not one of"):
        Settings.from_env({"COCOACH_ALLOW_DOWNLOAD": "maybe"})


async def test_sqlite_gives_old_records_the_default_org_once(tmp_path: Path) -> None:
    path = tmp_path / "cocoach.sqlite3"
    before = SqliteStore(path)  # a deployment from before organisations
    await before.create_room(RoomRecord(id="old", title="Old", created=1.0))
    await before.create_room(RoomRecord(id="labelled", title="L", created=1.0, org="brook"))
    await before.put_video(VideoRecord(id="v1", title="Lesson", created=1.0, owner="t1"))
    await before.close()

    after = SqliteStore(path, default_org="ashby")  # organisations now configured
    assert (await after.get_room("old")) == RoomRecord(
        id="old", title="Old", created=1.0, org="ashby"
    )
    assert (await after.get_room("labelled")) is not None
    assert (await after.get_room("labelled")).org == "brook"  # type: ignore[union-attr]
    video = await after.get_video("v1")
    assert video is not None and video.org == "ashby"
    await after.create_room(RoomRecord(id="new", title="New", created=2.0))
    await after.close()

    # Once only: a record written without org later is not rewritten by another start.
    again = SqliteStore(path, default_org="brook")
    assert (await again.get_room("new")).org is None  # type: ignore[union-attr]
    assert (await again.get_room("old")).org == "ashby"  # type: ignore[union-attr]
    await again.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
