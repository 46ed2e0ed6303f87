"""A coaching cycle's action steps in a room's document (`actions`, docs/documents.md): what
teacher and coach agree to try, co-edited live like the plan, and carried into every later
session of the cycle (server/http/cycles.py).

`actions` is a `Y.Map` of action id to a `Y.Map`: `text` (what to try), `author` (the writer's
`sub`, fixed once written), `authorName`, `status` (`planned`, `tried`, `worked`, `adapt`,
`dropped`), `created` (Unix seconds), `updated` (Unix seconds of its last change, optional:
`created` when absent), `evidence` (a `Y.Array` of note ids: the moments that motivated it, or
that show how it went).

`updated` lets a cycle take a change made in an earlier session after the next one began
(server/http/cycle_view.py): the newest version of each step wins.
"""

from __future__ import annotations

from typing import Any

import msgspec
from pycrdt import Array, Map

ACTION_STATUSES = ("planned", "tried", "worked", "adapt", "dropped")
MAX_ACTIONS = 200
MAX_ACTION_CHARS = 2_000
MAX_EVIDENCE = 50


class Action(msgspec.Struct, frozen=True):
    id: str
    text: str
    author: str
    status: str
    created: float
    evidence: tuple[str, ...] = ()
    author_name: str | None = None
    updated: float = 0.0


def read_action(key: str, value: object) -> Action | str:
    """The action stored under `key`, or a sentence saying what is wrong with it."""
    if not isinstance(value, Map):
        return "an action must be a map"
    text, author, status = value.get("text"), value.get("author"), value.get("status")
    created, evidence, name = value.get("created"), value.get("evidence"), value.get("authorName")
    updated = value.get("updated", created)
    if not isinstance(text, str) or not 1 <= len(text) <= MAX_ACTION_CHARS:
        return f"text must be 1-{MAX_ACTION_CHARS} characters"
    if not isinstance(author, str) or not author:
        return "author must be the writer's user id"
    if status not in ACTION_STATUSES:
        return f"status must be one of {', '.join(ACTION_STATUSES)}"
    if isinstance(created, bool) or not isinstance(created, int | float):
        return "created must be a number (Unix seconds)"
    if isinstance(updated, bool) or not isinstance(updated, int | float):
        return "updated must be a number (Unix seconds)"
    notes: list[str] = []
    if evidence is not None:
        if not isinstance(evidence, Array):
            return "evidence must be a list of note ids"
        notes = list(evidence)
        if len(notes) > MAX_EVIDENCE or not all(isinstance(n, str) for n in notes):
            return f"evidence must be at most {MAX_EVIDENCE} note ids"
    return Action(
        key,
        text,
        author,
        str(status),
        float(created),
        tuple(notes),
        name if isinstance(name, str) else None,
        float(updated),
    )


def read_actions(actions: Map[Any]) -> list[Action]:
    """The valid actions, oldest first."""
    found = [
        a for key, value in actions.items() if isinstance(a := read_action(key, value), Action)
    ]
    return sorted(found, key=lambda a: (a.created, a.id))


def write_action(actions: Map[Any], action: Action) -> None:
    """Into a document (the server carrying actions into a new session)."""
    actions[action.id] = Map(
        {
            "text": action.text,
            "author": action.author,
            "authorName": action.author_name or "",
            "status": action.status,
            "created": action.created,
            "updated": action.updated or action.created,
            "evidence": Array(list(action.evidence)),
        }
    )
