"""The trust library's search index (docs/groups.md, "The trust library"): pure and synchronous,
no asyncio, no HTTP. `LibraryIndex` is the contract; `FtsIndex` keeps it in SQLite FTS5 (the
stdlib's sqlite3), on a file (embedded mode) or in memory (":memory:", one per worker with
Redis). tests/test_library_search.py runs the one contract suite against both; bench/library.py
measures it (docs/benchmarks.md).

A person's query is never FTS5 syntax: it is cut into words (runs of Unicode letters and digits),
each searched as a quoted string with a prefix star, all of them required (`"word"* AND ...`).
"""

from __future__ import annotations

import sqlite3
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import msgspec

from server.errors import InvalidField, ServiceUnavailable

MAX_QUERY_CHARS = 200
MAX_QUERY_WORDS = 20
# bm25 weights of the text columns, in their order: a word in the title counts most, then the
# description and the publisher's summary, then the carried notes' text.
WEIGHTS = (8.0, 3.0, 3.0, 1.0)


class LibraryDoc(msgspec.Struct, frozen=True):
    """What the index knows of one published clip."""

    clip: str
    trust: str  # the trust it is published in
    title: str
    description: str
    summary: str
    notes: tuple[str, ...]  # the carried notes' text
    tags: tuple[str, ...]  # tag ids, repeated as often as the notes use them
    framework: str | None
    published: float


class LibraryIndex(Protocol):
    def put(self, doc: LibraryDoc) -> None:
        """Insert the doc, or replace the one of the same clip id."""

    def remove(self, clip: str) -> None:
        """Forget the clip (nothing happens if it is not there)."""

    def search(
        self,
        trust: str,
        q: str | None,
        tags: Sequence[str] = (),
        framework: str | None = None,
        limit: int = 20,
    ) -> list[str]:
        """Clip ids of `trust`: with words in `q`, the docs holding every one of them (a word
        matches as a prefix too), best match first; without, newest published first. `tags`:
        the doc has every one; `framework`: equal. At most `limit`. A `q` over 200 characters
        is refused (InvalidField naming `q`), as is a `limit` below 1."""
        ...

    def count(self, trust: str) -> int:
        """How many docs the trust has."""
        ...

    def close(self) -> None: ...


def query_words(q: str | None) -> list[str]:
    """The words of a person's query, at most 20: runs of Unicode letters and digits (with the
    combining marks that follow them), NFKC-normalised and lowercased, as the docs' text is
    indexed. Everything else separates words; nothing is syntax. Refuses a query over 200
    characters."""
    if not q:
        return []
    if len(q) > MAX_QUERY_CHARS:
        raise InvalidField(f"q: at most {MAX_QUERY_CHARS} characters")
    words: list[str] = []
    current: list[str] = []
    for ch in _normal(q).lower():
        kind = unicodedata.category(ch)
        if kind[0] in "LN" or kind == "Co" or (current and kind[0] == "M"):
            current.append(ch)
            continue
        if current:
            words.append("".join(current))
            current = []
            if len(words) == MAX_QUERY_WORDS:
                return words
    if current:
        words.append("".join(current))
    return words[:MAX_QUERY_WORDS]


def match_expression(words: Sequence[str]) -> str:
    """An FTS5 MATCH expression requiring every word, each as a prefix. A word holds letters,
    digits and marks only, so quoting it cannot be broken out of."""
    return " AND ".join(f'"{word}"*' for word in words)


def _normal(text: str) -> str:
    # NFKC on both sides: composed accents, ligatures ("ﬁ"), full-width letters and digits
    # are searched as the plain letters a person types.
    return unicodedata.normalize("NFKC", text)


# The text lives once, in library_docs; library_text is an FTS5 index over it (external
# content), kept in step by the triggers. Tags are a table of their own, one row per (tag, doc).
# prefix='1' keeps an index of one-letter prefixes: a one-letter word (the first key typed) would
# otherwise merge the lists of every word starting with it; it halves that worst case for about
# 12 % more index (docs/benchmarks.md, bench.library). Longer prefixes need none.
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS library_docs (
    id INTEGER PRIMARY KEY,
    clip TEXT NOT NULL UNIQUE,
    trust TEXT NOT NULL,
    published REAL NOT NULL,
    framework TEXT,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    summary TEXT NOT NULL,
    notes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS library_docs_newest ON library_docs (trust, published);
CREATE TABLE IF NOT EXISTS library_tags (
    tag TEXT NOT NULL,
    doc INTEGER NOT NULL,
    PRIMARY KEY (tag, doc)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS library_tags_doc ON library_tags (doc);
CREATE VIRTUAL TABLE IF NOT EXISTS library_text USING fts5(
    title, description, summary, notes,
    content='library_docs', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2', prefix='1'
);
CREATE TRIGGER IF NOT EXISTS library_docs_added AFTER INSERT ON library_docs BEGIN
    INSERT INTO library_text (rowid, title, description, summary, notes)
    VALUES (new.id, new.title, new.description, new.summary, new.notes);
END;
CREATE TRIGGER IF NOT EXISTS library_docs_gone AFTER DELETE ON library_docs BEGIN
    INSERT INTO library_text (library_text, rowid, title, description, summary, notes)
    VALUES ('delete', old.id, old.title, old.description, old.summary, old.notes);
    DELETE FROM library_tags WHERE doc = old.id;
END;
INSERT INTO library_text (library_text, rank)
VALUES ('rank', 'bm25({", ".join(map(str, WEIGHTS))})');
"""


class FtsIndex:
    """The index in SQLite FTS5, on a file or ":memory:". One connection, used by one caller
    at a time (the caller serialises; it may be any one thread at a time)."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if str(path) != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def put(self, doc: LibraryDoc) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM library_docs WHERE clip = ?", (doc.clip,))
            added = db.execute(
                "INSERT INTO library_docs (clip, trust, published, framework, title,"
                " description, summary, notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    doc.clip,
                    doc.trust,
                    doc.published,
                    doc.framework,
                    _normal(doc.title),
                    _normal(doc.description),
                    _normal(doc.summary),
                    _normal("\n".join(doc.notes)),
                ),
            )
            rowid = added.lastrowid
            db.executemany(
                "INSERT INTO library_tags (tag, doc) VALUES (?, ?)",
                [(tag, rowid) for tag in dict.fromkeys(doc.tags)],
            )

    def remove(self, clip: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM library_docs WHERE clip = ?", (clip,))

    def search(
        self,
        trust: str,
        q: str | None,
        tags: Sequence[str] = (),
        framework: str | None = None,
        limit: int = 20,
    ) -> list[str]:
        if limit < 1:
            raise InvalidField("limit: at least 1")
        words = query_words(q)
        where = ["d.trust = ?"]
        args: list[object] = [trust]
        if framework is not None:
            where.append("d.framework = ?")
            args.append(framework)
        for tag in dict.fromkeys(tags):
            # Correlated: one primary-key probe per candidate, so that a newest-first scan
            # stops after `limit` hits however common the tag is.
            where.append("EXISTS (SELECT 1 FROM library_tags t WHERE t.tag = ? AND t.doc = d.id)")
            args.append(tag)
        if words:
            sql = (
                "SELECT d.clip FROM library_text JOIN library_docs d ON d.id = library_text.rowid"
                " WHERE library_text MATCH ? AND " + " AND ".join(where) + " ORDER BY"
                " library_text.rank, d.published DESC LIMIT ?"
            )
            args.insert(0, match_expression(words))
        else:
            sql = (
                "SELECT d.clip FROM library_docs d WHERE "
                + " AND ".join(where)
                + " ORDER BY d.published DESC, d.id DESC LIMIT ?"
            )
        args.append(limit)
        with self._errors():
            return [str(row[0]) for row in self._db.execute(sql, args)]

    def count(self, trust: str) -> int:
        with self._errors():
            row = self._db.execute(
                "SELECT count(*) FROM library_docs WHERE trust = ?", (trust,)
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise ServiceUnavailable(f"the library's index failed: {exc}") from exc
