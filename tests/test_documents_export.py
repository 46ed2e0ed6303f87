"""Exports of a room document, built as a real pycrdt Doc, with hostile entries mixed in."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text

from server.documents.export import (
    CSV_HEADER,
    export_csv,
    export_json,
    export_vtt,
    export_web_annotation,
    summary,
)
from server.documents.frameworks import BUILTIN_DIR, as_meta, load_framework
from server.documents.model import Annotation, Reply, entry_problem, read_annotation, read_timeline

CREATED = 1_700_000_000.0  # 2023-11-14T22:13:20Z
BASE = "https://coach.example"


def entry(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"start": 1.0, "text": "t", "tags": [], "author": "u1"}
    base["created"] = CREATED
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


# (key, value, expected problem); `...` as a field value means "leave the field out".
MALFORMED: list[tuple[str, object, str]] = [
    ("start-string", entry(start="12"), "start is not a number (got string)"),
    ("start-bool", entry(start=True), "start is not a number (got boolean)"),
    ("start-nan", entry(start=math.nan), "start is not finite"),
    ("start-inf", entry(start=math.inf), "start is not finite"),
    ("start-negative", entry(start=-1.0), "start is negative"),
    ("start-huge", entry(start=1e12), "start is beyond"),
    ("start-missing", entry(start=...), "start is missing"),
    ("end-before-start", entry(start=10.0, end=5.0), "end is before start"),
    ("end-bool", entry(end=False), "end is not a number (got boolean)"),
    ("text-missing", entry(text=...), "text is missing"),
    ("text-number", entry(text=5), "text is not a string (got number)"),
    ("author-missing", entry(author=...), "author is missing"),
    ("created-string", entry(created="yesterday"), "created is not a number (got string)"),
    ("tags-string", entry(tags="open"), "tags is not an array (got string)"),
    ("tags-number", entry(tags=["open", 3]), "tags[1] is not a string (got number)"),
    ("tags-map", entry(tags=[{"id": "open"}]), "tags[0] is not a string (got map)"),
    ("replies-map", entry(replies={"a": 1}), "replies is not an array (got map)"),
    ("reply-not-map", entry(replies=["hi"]), "replies[0] is not a map (got string)"),
    (
        "reply-no-created",
        entry(replies=[{"author": "u2", "text": "yes"}]),
        "replies[0].created is missing",
    ),
    ("number", 42, "entry is not a map (got number)"),
    ("string", "hello", "entry is not a map (got string)"),
    ("list", [1, 2], "entry is not a map (got array)"),
    ("null", None, "entry is not a map (got null)"),
    ("bool", True, "entry is not a map (got boolean)"),
]


def make_doc(
    entries: Mapping[str, object] | None = None,
    *,
    meta: dict[str, object] | None = None,
    plan: str = "",
) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    timeline = doc.get("timeline", type=Map)
    for key, value in (entries or {}).items():
        timeline[key] = value
    doc.get("plan", type=Text).insert(0, plan)
    meta_map = doc.get("meta", type=Map)
    for key, value in (meta or {}).items():
        meta_map[key] = value
    return doc


def valid_entries() -> dict[str, object]:
    return {
        "a1": Map(
            {
                "start": 12.5,
                "text": "open q",
                "tags": Array(["open-question"]),
                "author": "u1",
                "created": CREATED,
            }
        ),
        "a2": Map(
            {
                "start": 12.5,
                "end": 30,
                "text": Text("a range"),
                "tags": Array(["closed-question", "open-question", "closed-question"]),
                "author": "u2",
                "created": CREATED + 60,
                "replies": Array(
                    [
                        Map({"author": "u1", "text": "agreed", "created": CREATED + 120}),
                        {"author": "u3", "text": "me too", "created": CREATED + 180},
                    ]
                ),
            }
        ),
        # A plain dict, as a client writing JSON into the map would leave it.
        "a3": {"start": 75, "text": "wait", "tags": ["wait-time"], "author": "u1", "created": 1},
        "a4": Map({"start": 200.25, "text": "late", "author": "u3", "created": CREATED}),
    }


def mixed_doc(**kwargs: Any) -> Doc[Any]:
    entries = valid_entries()
    for key, value, _ in MALFORMED:
        entries[f"bad-{key}"] = Map(value) if isinstance(value, dict) else value
    return make_doc(entries, **kwargs)


QUESTIONING = as_meta(load_framework(BUILTIN_DIR / "questioning.yaml"))


# --- the model ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "problem"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_plain_values_name_the_problem(key: str, value: object, problem: str) -> None:
    result = read_annotation(key, value)
    assert isinstance(result, str)
    assert result.startswith(problem)
    assert entry_problem(value) == result


def test_malformed_entries_in_a_doc_are_listed_not_raised() -> None:
    annotations, invalid = read_timeline(mixed_doc())
    assert [a.id for a in annotations] == ["a1", "a2", "a3", "a4"]
    problems = dict(invalid)
    assert sorted(problems) == sorted(f"bad-{key}" for key, _, _ in MALFORMED)
    for key, _, problem in MALFORMED:
        assert problems[f"bad-{key}"].startswith(problem), key


def test_valid_entry_reads_crdt_and_plain_values() -> None:
    annotations, invalid = read_timeline(make_doc(valid_entries()))
    assert invalid == []
    a2 = annotations[1]
    assert a2 == Annotation(
        id="a2",
        start=12.5,
        end=30.0,
        text="a range",
        tags=["closed-question", "open-question", "closed-question"],
        author="u2",
        created=CREATED + 60,
        replies=[
            Reply(author="u1", text="agreed", created=CREATED + 120),
            Reply(author="u3", text="me too", created=CREATED + 180),
        ],
    )
    assert annotations[2].start == 75.0
    assert annotations[3].tags == [] and annotations[3].end is None
    assert entry_problem(entry()) is None


def test_sorted_by_start_then_id() -> None:
    doc = make_doc({"b": Map(entry(start=5.0)), "a": Map(entry(start=5.0)), "c": Map(entry())})
    assert [a.id for a in read_timeline(doc)[0]] == ["c", "a", "b"]


# --- JSON --------------------------------------------------------------------------------------


def test_json_export() -> None:
    doc = mixed_doc(
        meta={"title": "Year 9 maths", "video": "v1", "framework": QUESTIONING}, plan="# Plan"
    )
    data = json.loads(export_json(doc, "r1"))
    assert data["room"] == "r1"
    assert data["title"] == "Year 9 maths"
    assert data["video"] == "v1"
    assert data["framework"]["id"] == "questioning"
    assert data["plan"] == "# Plan"
    assert [a["id"] for a in data["timeline"]] == ["a1", "a2", "a3", "a4"]
    assert data["timeline"][1]["end"] == 30.0
    assert data["timeline"][1]["replies"][0] == {
        "author": "u1",
        "text": "agreed",
        "created": CREATED + 120,
    }
    assert len(data["invalid"]) == len(MALFORMED)
    assert {"id": "bad-number", "problem": "entry is not a map (got number)"} in data["invalid"]
    assert json.loads(export_json(doc, "r1", title="Other"))["title"] == "Other"


def test_json_export_of_empty_doc_and_hostile_meta() -> None:
    nested: Any = "deep"
    for _ in range(100):
        nested = {"x": nested}
    doc = make_doc(meta={"title": 5, "video": ["no"], "framework": nested})
    data = json.loads(export_json(doc, "r1"))
    assert data["title"] == "" and data["video"] is None
    assert data["timeline"] == [] and data["invalid"] == [] and data["plan"] == ""


# --- CSV ---------------------------------------------------------------------------------------

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def read_csv(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_csv_export() -> None:
    rows = read_csv(export_csv(mixed_doc()))
    assert tuple(rows[0]) == CSV_HEADER
    body = [dict(zip(CSV_HEADER, row, strict=True)) for row in rows[1:]]
    assert [row["id"] for row in body] == ["a1", "a2", "a3", "a4"]
    a2 = body[1]
    assert (a2["start"], a2["end"], a2["start_hms"], a2["end_hms"]) == (
        "12.5",
        "30",
        "00:00:12.500",
        "00:00:30.000",
    )
    assert a2["tags"] == "closed-question;open-question;closed-question"
    assert a2["created_iso"] == "2023-11-14T22:14:20Z"
    assert a2["replies"] == "u1: agreed\nu3: me too"
    assert body[0]["end"] == "" and body[0]["end_hms"] == ""


def test_csv_neutralises_formula_cells() -> None:
    hostile = Map(
        {
            "start": 1,
            "text": '=HYPERLINK("http://evil.example","click")',
            "tags": Array(["@x", "ok"]),
            "author": "+1",
            "created": CREATED,
            "replies": Array([{"author": "-2", "text": "x", "created": CREATED}]),
        }
    )
    safe = Map({"start": 2, "text": 'a, "quoted"\nline', "author": "\tu", "created": CREATED})
    rows = read_csv(export_csv(make_doc({"-2": hostile, "cr": safe})))
    first, second = rows[1], rows[2]
    assert first[0] == "'-2"
    assert first[CSV_HEADER.index("text")] == '\'=HYPERLINK("http://evil.example","click")'
    assert first[CSV_HEADER.index("tags")] == "'@x;ok"
    assert first[CSV_HEADER.index("author")] == "'+1"
    assert first[CSV_HEADER.index("replies")] == "'-2: x"
    assert second[CSV_HEADER.index("text")] == 'a, "quoted"\nline'
    assert second[CSV_HEADER.index("author")] == "'\tu"
    for row in rows:
        assert len(row) == len(CSV_HEADER)
        for cell in row:
            assert not cell.startswith(DANGEROUS), cell


# --- WebVTT ------------------------------------------------------------------------------------

TIMING = re.compile(r"^(\d{2,}):(\d{2}):(\d{2})\.(\d{3}) --> (\d{2,}):(\d{2}):(\d{2})\.(\d{3})$")


def vtt_seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_vtt(data: bytes) -> list[tuple[str | None, float, float, list[str]]]:
    """A strict reading of the WebVTT block rules: blank lines end blocks, `-->` means timing."""
    text = data.decode("utf-8")
    assert "\r" not in text
    blocks = text.split("\n\n")
    assert blocks[0] == "WEBVTT"
    assert text.endswith("\n") and not text.endswith("\n\n\n")
    cues = []
    for block in blocks[1:]:
        lines = block.strip("\n").split("\n")
        cue_id = None
        if "-->" not in lines[0]:
            cue_id = lines.pop(0)
        match = TIMING.match(lines[0])
        assert match, block
        start, end = vtt_seconds(*match.groups()[:4]), vtt_seconds(*match.groups()[4:])
        assert end > start
        payload = lines[1:]
        for line in payload:
            assert line.strip() and "-->" not in line and "<" not in line, block
        cues.append((cue_id, start, end, payload))
    return cues


def test_vtt_export_valid_cues() -> None:
    doc = mixed_doc(meta={"framework": QUESTIONING})
    cues = parse_vtt(export_vtt(doc))
    assert [(c[0], c[1], c[2]) for c in cues] == [
        ("a1", 12.5, 17.5),
        ("a2", 12.5, 30.0),
        ("a3", 75.0, 80.0),
        ("a4", 200.25, 205.25),
    ]
    assert cues[0][3] == ["[Open question] open q"]
    assert cues[1][3] == ["[Closed question, Open question] a range"]
    assert cues[3][3] == ["late"]


def test_vtt_escapes_hostile_text() -> None:
    entries = {
        "x-->y\nz": Map(entry(start=1.0, text="<b>bold</b> & co", tags=Array(["<i>"]))),
        "arrow": Map(entry(start=2.0, text="a --> b --->c")),
        "blank": Map(entry(start=3.0, end=3.0, text="one\n\n\ntwo\r\n\r\nthree\n   \n")),
        "empty": Map(entry(start=3725.25, text="")),
        "---->": Map(entry(start=4.0)),
    }
    data = export_vtt(make_doc(entries))
    cues = parse_vtt(data)
    assert len(cues) == len(entries)
    by_start = {c[1]: c for c in cues}
    assert by_start[1.0][0] == "x->y z"
    assert by_start[1.0][3] == ["[&lt;i&gt;] &lt;b&gt;bold&lt;/b&gt; &amp; co"]
    assert by_start[2.0][3] == ["a --&gt; b ---&gt;c"]
    assert by_start[3.0][2] == 8.0  # end == start falls back to the default duration
    assert by_start[3.0][3] == ["one", "two", "three"]
    assert by_start[3725.25][3] == []
    assert b"01:02:05.250 --> 01:02:10.250" in data
    assert "-->" not in (by_start[4.0][0] or "")


def test_vtt_of_empty_doc() -> None:
    assert export_vtt(make_doc()) == b"WEBVTT\n"


# --- W3C Web Annotation ------------------------------------------------------------------------


def web(doc: Doc[Any], room: str = "r1") -> dict[str, Any]:
    data: dict[str, Any] = json.loads(export_web_annotation(doc, room, BASE + "/"))
    return data


def test_web_annotation_collection() -> None:
    data = web(mixed_doc(meta={"title": "Lesson", "video": "v 1"}))
    assert data["@context"] == "http://www.w3.org/ns/anno.jsonld"
    assert data["type"] == "AnnotationCollection"
    assert data["label"] == "Lesson"
    page = data["first"]
    assert page["type"] == "AnnotationPage"
    items = page["items"]
    assert data["total"] == len(items) == 6  # four annotations and two replies

    collection = f"{BASE}/api/rooms/r1/annotations"
    a1, a2, reply1, reply2 = items[0], items[1], items[2], items[3]
    assert a1["id"] == f"{collection}/a1"
    assert a1["type"] == "Annotation"
    assert a1["created"] == "2023-11-14T22:13:20Z"
    assert a1["creator"] == {"type": "Person", "name": "u1"}
    assert a1["body"][0]["value"] == "open q"
    assert a1["body"][0]["purpose"] == "commenting"
    assert a1["body"][1] == {
        "type": "TextualBody",
        "value": "open-question",
        "format": "text/plain",
        "purpose": "tagging",
    }
    selector = {"type": "FragmentSelector", "conformsTo": "http://www.w3.org/TR/media-frags/"}
    assert a1["target"] == {
        "source": f"{BASE}/api/videos/v%201",
        "selector": {**selector, "value": "t=12.5"},
    }
    assert a2["target"]["selector"] == {**selector, "value": "t=12.5,30"}
    assert [b["purpose"] for b in a2["body"]] == ["commenting", "tagging", "tagging", "tagging"]
    for i, reply in enumerate((reply1, reply2)):
        assert reply["motivation"] == "replying"
        assert reply["target"] == a2["id"]
        assert reply["id"] == f"{a2['id']}/replies/{i}"
    assert reply2["body"][0]["value"] == "me too"
    assert reply2["creator"]["name"] == "u3"


def test_web_annotation_sources_and_ids() -> None:
    no_video = web(make_doc({"a/b?c": Map(entry(start=0.0))}), room="room/1")
    item = no_video["first"]["items"][0]
    assert item["id"] == f"{BASE}/api/rooms/room%2F1/annotations/a%2Fb%3Fc"
    assert item["target"]["source"] == f"{BASE}/rooms/room%2F1"
    assert item["target"]["selector"]["value"] == "t=0"
    assert no_video["label"] == ""

    url = "https://cdn.example/lesson.mp4"
    linked = web(make_doc({"a": Map(entry())}, meta={"video": url}))
    assert linked["first"]["items"][0]["target"]["source"] == url


def test_web_annotation_leaves_out_impossible_dates() -> None:
    doc = make_doc({"a": Map(entry(created=1e300))})
    assert "created" not in web(doc)["first"]["items"][0]


# --- summary -----------------------------------------------------------------------------------


def test_summary_counts_and_zero_fills() -> None:
    result = summary(mixed_doc())
    assert result["total"] == 4
    assert result["invalid"] == len(MALFORMED)
    # a2 lists closed-question twice; it counts once for that annotation.
    assert result["tags"] == {"open-question": 2, "closed-question": 1, "wait-time": 1}
    assert result["minutes"] == [
        {"minute": 0, "total": 2, "tags": {"open-question": 2, "closed-question": 1}},
        {"minute": 1, "total": 1, "tags": {"wait-time": 1}},
        {"minute": 2, "total": 0, "tags": {}},
        {"minute": 3, "total": 1, "tags": {}},
    ]


def test_summary_range_counts_where_it_starts_and_empty_doc() -> None:
    doc = make_doc({"r": Map(entry(start=59.9, end=130.0, tags=Array(["t"])))})
    assert summary(doc)["minutes"] == [{"minute": 0, "total": 1, "tags": {"t": 1}}]
    empty = {"video": None, "total": 0, "invalid": 0, "tags": {}, "minutes": []}
    assert summary(make_doc()) == empty
