"""The annotation model, read defensively out of a room's shared document.

Any client can write anything into the timeline map, so every value is checked here: an entry
that breaks the model becomes a one-line problem for the exports to report, never an exception
further down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec
from pycrdt import Array, Doc, Map, Text

# Bounds media times so a hostile start of 1e12 cannot make the per-minute summary allocate
# billions of buckets; a day is far beyond any lesson recording.
MAX_SECONDS = 24 * 3600.0
MAX_ID_CHARS = 200  # a note's `video` and `authorName`


class Reply(msgspec.Struct, frozen=True):
    author: str
    text: str
    created: float


class Annotation(msgspec.Struct, frozen=True):
    id: str
    start: float
    end: float | None
    text: str
    tags: list[str]
    author: str
    created: float
    replies: list[Reply]
    # The lesson (library video id) the note was made on; None only in a note written before
    # notes carried it and not yet migrated (server/documents/lessons.py).
    video: str | None = None
    author_name: str | None = None  # the author's display name when writing (`authorName`)


class _Problem(Exception):
    """Carries the first problem out of the nested readers; never leaves this module."""


def read_annotation(key: str, value: object) -> Annotation | str:
    """The annotation stored under `key`, or a short sentence saying what is wrong with it."""
    try:
        return _annotation(key, value)
    except _Problem as problem:
        return str(problem)


def entry_problem(value: object) -> str | None:
    result = read_annotation("", value)
    return result if isinstance(result, str) else None


def read_timeline(doc: Doc[Any]) -> tuple[list[Annotation], list[tuple[str, str]]]:
    """Valid annotations sorted by (start, id), and (id, problem) for every invalid entry."""
    valid: list[Annotation] = []
    invalid: list[tuple[str, str]] = []
    for key, value in doc.get("timeline", type=Map).items():
        result = read_annotation(key, value)
        if isinstance(result, str):
            invalid.append((key, result))
        else:
            valid.append(result)
    valid.sort(key=lambda a: (a.start, a.id))
    invalid.sort()
    return valid, invalid


def _annotation(key: str, value: object) -> Annotation:
    fields = _fields(value, "entry")
    start = _number(fields, "start", "")
    if start is None:
        raise _Problem("start is missing")
    _check_media_time(start, "start")
    end = _number(fields, "end", "")
    if end is not None:
        _check_media_time(end, "end")
        if end < start:
            raise _Problem("end is before start")
    created = _number(fields, "created", "")
    if created is None:
        raise _Problem("created is missing")
    return Annotation(
        id=key,
        start=start,
        end=end,
        text=_string(fields, "text", ""),
        tags=_tags(fields.get("tags")),
        author=_string(fields, "author", ""),
        created=created,
        replies=_replies(fields.get("replies")),
        video=_optional_string(fields, "video"),
        author_name=_optional_string(fields, "authorName"),
    )


def _reply(value: object, where: str) -> Reply:
    fields = _fields(value, where)
    created = _number(fields, "created", f"{where}.")
    if created is None:
        raise _Problem(f"{where}.created is missing")
    return Reply(
        author=_string(fields, "author", f"{where}."),
        text=_string(fields, "text", f"{where}."),
        created=created,
    )


def _replies(value: object) -> list[Reply]:
    if value is None:
        return []
    if not isinstance(value, Array | list):
        raise _Problem(f"replies is not an array (got {_kind(value)})")
    return [_reply(item, f"replies[{i}]") for i, item in enumerate(value)]


def _tags(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, Array | list):
        raise _Problem(f"tags is not an array (got {_kind(value)})")
    tags: list[str] = []
    for i, tag in enumerate(value):
        if not isinstance(tag, str):
            raise _Problem(f"tags[{i}] is not a string (got {_kind(tag)})")
        tags.append(tag)
    return tags


def _fields(value: object, what: str) -> Mapping[Any, object]:
    if isinstance(value, Map):
        return dict(value.items())
    if isinstance(value, dict):
        return value
    raise _Problem(f"{what} is not a map (got {_kind(value)})")


def _number(fields: Mapping[Any, object], name: str, prefix: str) -> float | None:
    raw = fields.get(name)
    if raw is None:
        return None
    # bool is an int subclass, but `true` as a time is a client bug, not a 1.
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _Problem(f"{prefix}{name} is not a number (got {_kind(raw)})")
    try:
        number = float(raw)
    except OverflowError:  # a plain-Python int too large for a float
        raise _Problem(f"{prefix}{name} is not finite") from None
    if not math.isfinite(number):
        raise _Problem(f"{prefix}{name} is not finite")
    # Adding 0.0 turns -0.0 into 0.0, which would otherwise print as "-0" in the exports.
    return number + 0.0


def _check_media_time(seconds: float, name: str) -> None:
    if seconds < 0:
        raise _Problem(f"{name} is negative")
    if seconds > MAX_SECONDS:
        raise _Problem(f"{name} is beyond {MAX_SECONDS:.0f} seconds")


def _string(fields: Mapping[Any, object], name: str, prefix: str) -> str:
    raw = fields.get(name)
    if raw is None:
        raise _Problem(f"{prefix}{name} is missing")
    if isinstance(raw, Text):
        return str(raw)
    if not isinstance(raw, str):
        raise _Problem(f"{prefix}{name} is not a string (got {_kind(raw)})")
    return raw


def _optional_string(fields: Mapping[Any, object], name: str) -> str | None:
    raw = fields.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise _Problem(f"{name} is not a string (got {_kind(raw)})")
    if len(raw) > MAX_ID_CHARS:
        raise _Problem(f"{name} is over {MAX_ID_CHARS} characters")
    return raw or None


def _kind(value: object) -> str:
    """JSON-ish names, since the people reading the problems think in Yjs/JSON terms."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str | Text):
        return "string"
    if isinstance(value, list | Array):
        return "array"
    if isinstance(value, dict | Map):
        return "map"
    return type(value).__name__
