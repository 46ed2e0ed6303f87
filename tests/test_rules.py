"""The document rules without a server: the watch's own bookkeeping."""

from __future__ import annotations

from typing import Any

from pycrdt import Array, Doc, Map

from server.documents.rules import ChangeWatch, declare_roots


def test_the_note_count_follows_adds_and_deletes_without_walking_the_map() -> None:
    source: Doc[Any] = Doc()
    _, timeline, _ = declare_roots(source)
    updates: list[bytes] = []
    source.observe(lambda event: updates.append(event.update))
    candidate: Doc[Any] = Doc()
    watch = ChangeWatch(candidate)
    for i in range(30):
        with source.transaction():
            timeline[f"n{i}"] = Map(
                {"start": 1.0, "text": "x", "tags": Array([]), "author": "a", "created": 1.0}
            )
            if i >= 5:
                del timeline[f"n{i - 5}"]
        candidate.apply_update(updates[-1])
    timeline["n29"]["text"] = "changed"  # a change to a note is not a new note
    candidate.apply_update(updates[-1])
    assert watch.note_count == len(candidate.get("timeline", type=Map)) == 5
    assert ChangeWatch(candidate).note_count == 5


def test_only_the_author_may_delete_a_note() -> None:
    from server.documents.rules import judge, note_facts
    from server.rooms.roles import Role, permissions_for

    writer: Doc[Any] = Doc()
    _, timeline, _ = declare_roots(writer)
    updates: list[bytes] = []
    writer.observe(lambda event: updates.append(event.update))
    timeline["n1"] = Map(
        {"start": 1.0, "text": "x", "tags": Array([]), "author": "user:ann", "created": 1.0}
    )
    del timeline["n1"]
    added, deleted = updates

    committed: Doc[Any] = Doc()
    _, committed_timeline, _ = declare_roots(committed)
    committed.apply_update(added)
    for user, expected in (("user:tess", "only its author may delete a note"), ("user:ann", None)):
        candidate: Doc[Any] = Doc()
        candidate.apply_update(added)
        watch = ChangeWatch(candidate)
        candidate.apply_update(deleted)
        verdict = judge(
            watch,
            lambda note: note_facts(committed_timeline, note),
            user,
            permissions_for(Role.TEACHER),
        )
        problem = verdict.problem
        assert problem is None if expected is None else expected in (problem or ""), problem


def test_a_closed_watch_lets_its_replica_go() -> None:
    """The Yrs document holds the watch's callbacks and they hold the document: a cycle through
    Rust that Python's collector cannot see. Closing the watch breaks it; a cooled room's
    replica would otherwise stay in memory for good."""
    import gc
    import weakref

    doc: Doc[Any] = Doc()
    watch = ChangeWatch(doc)
    kept = weakref.ref(doc)
    del doc, watch
    gc.collect()
    assert kept() is not None  # the cycle the close is for

    doc = Doc()
    watch = ChangeWatch(doc)
    freed = weakref.ref(doc)
    watch.close()
    del doc, watch
    gc.collect()
    assert freed() is None
