"""Downloads of a room's document: JSON, CSV, WebVTT, W3C Web Annotation, and a summary.

Everything here reads through `read_timeline`, so entries that break the model are skipped (and
listed where the format has room for it) rather than failing the whole export.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import msgspec
from pycrdt import Array, Doc, Map, Text

from server.documents.lessons import read_lessons
from server.documents.model import Annotation, read_timeline

DEFAULT_CUE_SECONDS = 5.0
CSV_HEADER = (
    "id",
    "start",
    "end",
    "start_hms",
    "end_hms",
    "tags",
    "author",
    "created_iso",
    "text",
    "replies",
    "video",
    "author_name",
)
# OWASP CSV injection: spreadsheets treat cells starting with these as formulas.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_ANNO_CONTEXT = "http://www.w3.org/ns/anno.jsonld"
_MEDIA_FRAGMENTS = "http://www.w3.org/TR/media-frags/"
# Meta is client-written too; a deeply nested value must not blow the recursion limit.
_MAX_META_DEPTH = 32


def notes_of(doc: Doc[Any], video: str | None) -> tuple[list[Annotation], list[tuple[str, str]]]:
    """The valid notes, each with its lesson (`video`; a note from before notes named theirs
    gets the room's), only those of lesson `video` if given; and the invalid entries."""
    annotations, invalid = read_timeline(doc)
    current = _Meta.read(doc).video
    bound = [a if a.video else msgspec.structs.replace(a, video=current) for a in annotations]
    return [a for a in bound if video is None or a.video == video], invalid


def framework_id(doc: Doc[Any]) -> str | None:
    """The id of the framework the room's page chose (meta.framework), if any."""
    chosen = _Meta.read(doc).framework
    found = chosen.get("id") if chosen is not None else None
    return found if isinstance(found, str) else None


def export_json(
    doc: Doc[Any],
    room_id: str,
    *,
    title: str | None = None,
    video: str | None = None,
    talk: dict[str, object] | None = None,
) -> bytes:
    """The room's document as JSON; `talk`, the talk report, for those who may read it."""
    annotations, invalid = notes_of(doc, video)
    meta = _Meta.read(doc)
    body = {
        "room": room_id,
        "title": meta.title if title is None else title,
        "video": meta.video,
        "lessons": [
            {"video": lesson.video, "added": lesson.added, "kind": lesson.kind}
            for lesson in read_lessons(doc.get("lessons", type=Map))
        ],
        "framework": meta.framework,
        "plan": str(doc.get("plan", type=Text)),
        "timeline": annotations,
        "invalid": [{"id": key, "problem": problem} for key, problem in invalid],
    }
    if talk is not None:
        body["talk"] = talk
    return msgspec.json.format(msgspec.json.encode(body), indent=2)


def export_csv(doc: Doc[Any], video: str | None = None) -> bytes:
    annotations, _ = notes_of(doc, video)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for a in annotations:
        row = (
            a.id,
            _seconds(a.start),
            "" if a.end is None else _seconds(a.end),
            _hms(round(a.start * 1000)),
            "" if a.end is None else _hms(round(a.end * 1000)),
            ";".join(a.tags),
            a.author,
            _iso(a.created) or "",
            a.text,
            "\n".join(f"{r.author}: {r.text}" for r in a.replies),
            a.video or "",
            a.author_name or "",
        )
        writer.writerow([csv_cell(cell) for cell in row])
    # The BOM is what makes Excel read the file as UTF-8 instead of the local code page.
    return out.getvalue().encode("utf-8-sig")


def export_vtt(doc: Doc[Any], video: str | None = None) -> bytes:
    """Captions of one lesson: `video`, else the one the room shows (cues of two lessons in one
    track would sit over the wrong pictures)."""
    meta = _Meta.read(doc)
    annotations, _ = notes_of(doc, video or meta.video)
    labels = meta.tag_labels()
    blocks = ["WEBVTT"]
    for a in annotations:
        start_ms = round(a.start * 1000)
        end_ms = start_ms if a.end is None else round(a.end * 1000)
        # A cue must end after it starts; point annotations get a default duration.
        if end_ms <= start_ms:
            end_ms = start_ms + round(DEFAULT_CUE_SECONDS * 1000)
        lines = [cue_id] if (cue_id := _vtt_cue_id(a.id)) else []
        lines.append(f"{_hms(start_ms)} --> {_hms(end_ms)}")
        payload = _vtt_text(_tag_prefix(a.tags, labels) + a.text)
        if payload:
            lines.append(payload)
        blocks.append("\n".join(lines))
    return ("\n\n".join(blocks) + "\n").encode("utf-8")


def export_web_annotation(
    doc: Doc[Any],
    room_id: str,
    base_url: str,
    *,
    title: str | None = None,
    video: str | None = None,
) -> bytes:
    annotations, _ = notes_of(doc, video)
    meta = _Meta.read(doc)
    base = base_url.rstrip("/")
    room = quote(room_id, safe="")
    collection_id = f"{base}/api/rooms/{room}/annotations"

    def source_of(lesson: str | None) -> str:
        """Each note targets its own lesson."""
        if lesson is None:
            return f"{base}/rooms/{room}"
        if lesson.startswith(("http://", "https://")):
            return lesson
        return f"{base}/api/videos/{quote(lesson, safe='')}"

    items: list[dict[str, object]] = []
    for a in annotations:
        annotation_id = f"{collection_id}/{quote(a.id, safe='')}"
        items.append(_web_annotation(a, annotation_id, source_of(a.video)))
        items.extend(
            _web_item(
                f"{annotation_id}/replies/{i}",
                "replying",
                r.author,
                r.created,
                [_textual_body(r.text, "replying")],
                annotation_id,
            )
            for i, r in enumerate(a.replies)
        )
    collection = {
        "@context": _ANNO_CONTEXT,
        "id": collection_id,
        "type": "AnnotationCollection",
        "label": meta.title if title is None else title,
        "total": len(items),
        "first": {
            "id": f"{collection_id}?page=0",
            "type": "AnnotationPage",
            "startIndex": 0,
            "items": items,
        },
    }
    return msgspec.json.format(msgspec.json.encode(collection), indent=2)


def summary(doc: Doc[Any], video: str | None = None) -> dict[str, Any]:
    """Counts per tag overall and per minute of one lesson (`video`, else the one the room
    shows), zero-filled so a bar chart needs no gaps."""
    lesson = video or _Meta.read(doc).video
    annotations, invalid = notes_of(doc, lesson)
    per_minute: dict[int, tuple[int, Counter[str]]] = {}
    overall: Counter[str] = Counter()
    for a in annotations:
        # A tag listed twice on one annotation is still one observation.
        tags = list(dict.fromkeys(a.tags))
        overall.update(tags)
        minute = math.floor(a.start / 60)
        count, minute_tags = per_minute.get(minute, (0, Counter()))
        minute_tags.update(tags)
        per_minute[minute] = (count + 1, minute_tags)
    last = max(per_minute, default=-1)
    minutes = []
    for minute in range(last + 1):
        count, minute_tags = per_minute.get(minute, (0, Counter()))
        minutes.append({"minute": minute, "total": count, "tags": dict(minute_tags)})
    return {
        "video": lesson,
        "total": len(annotations),
        "invalid": len(invalid),
        "tags": dict(overall),
        "minutes": minutes,
    }


class _Meta(msgspec.Struct, frozen=True):
    title: str
    video: str | None
    framework: dict[str, Any] | None

    @classmethod
    def read(cls, doc: Doc[Any]) -> _Meta:
        meta = doc.get("meta", type=Map)
        title, video = meta.get("title"), meta.get("video")
        framework = _plain(meta.get("framework"), 0)
        return cls(
            title=title
            if isinstance(title, str)
            else str(title)
            if isinstance(title, Text)
            else "",
            video=video if isinstance(video, str) and video else None,
            framework=framework if isinstance(framework, dict) else None,
        )

    def tag_labels(self) -> dict[str, str]:
        tags = (self.framework or {}).get("tags")
        if not isinstance(tags, list):
            return {}
        return {
            tag["id"]: tag["label"]
            for tag in tags
            if isinstance(tag, dict)
            and isinstance(tag.get("id"), str)
            and isinstance(tag.get("label"), str)
        }


def _plain(value: object, depth: int) -> object:
    """A JSON-safe copy of a client-written meta value."""
    if depth > _MAX_META_DEPTH:
        return None
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Map | dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, Array | list):
        return [_plain(v, depth + 1) for v in value]
    return str(value)


def _web_annotation(a: Annotation, annotation_id: str, source: str) -> dict[str, object]:
    body = [_textual_body(a.text, "commenting")]
    body.extend(_textual_body(tag, "tagging") for tag in a.tags)
    fragment = f"t={_seconds(a.start)}"
    if a.end is not None:
        fragment += f",{_seconds(a.end)}"
    target = {
        "source": source,
        "selector": {"type": "FragmentSelector", "conformsTo": _MEDIA_FRAGMENTS, "value": fragment},
    }
    author = a.author_name or a.author  # the name people knew, when the note kept it
    return _web_item(annotation_id, "commenting", author, a.created, body, target)


def _web_item(
    item_id: str,
    motivation: str,
    author: str,
    created: float,
    body: list[dict[str, str]],
    target: object,
) -> dict[str, object]:
    item: dict[str, object] = {"id": item_id, "type": "Annotation", "motivation": motivation}
    if (iso := _iso(created)) is not None:
        item["created"] = iso
    item["creator"] = {"type": "Person", "name": author}
    item["body"] = body
    item["target"] = target
    return item


def _textual_body(value: str, purpose: str) -> dict[str, str]:
    return {"type": "TextualBody", "value": value, "format": "text/plain", "purpose": purpose}


def csv_cell(value: str) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


def _vtt_cue_id(annotation_id: str) -> str:
    cue_id = " ".join(annotation_id.splitlines())
    # Replacing once can make a new arrow ("--->" becomes "-->"), so repeat until none is left.
    while "-->" in cue_id:
        cue_id = cue_id.replace("-->", "->")
    return cue_id


def _vtt_text(text: str) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # A blank line ends the cue, so only lines with something on them are kept.
    return "\n".join(line for line in escaped.splitlines() if line.strip())


def _tag_prefix(tags: list[str], labels: dict[str, str]) -> str:
    if not tags:
        return ""
    names = (" ".join(labels.get(tag, tag).split()) for tag in dict.fromkeys(tags))
    return f"[{', '.join(names)}] "


def _hms(ms: int) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def _seconds(value: float) -> str:
    """Seconds to the millisecond without trailing zeros: 12.5, 30, 0.25."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _iso(seconds: float) -> str | None:
    try:
        moment = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
