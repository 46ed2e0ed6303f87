"""The trust library's search index (server/clips/search.py): one contract, run against FtsIndex
on a file (embedded mode) and in memory (a worker's own, with Redis)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.clips.search import FtsIndex, LibraryDoc, LibraryIndex, match_expression, query_words
from server.errors import InvalidField


@pytest.fixture(params=["file", "memory"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LibraryIndex]:
    fts = FtsIndex(tmp_path / "library.sqlite3" if request.param == "file" else ":memory:")
    yield fts
    fts.close()


def doc(
    clip: str,
    published: float,
    *,
    trust: str = "north",
    title: str = "A lesson",
    description: str = "",
    summary: str = "",
    notes: tuple[str, ...] = (),
    tags: tuple[str, ...] = (),
    framework: str | None = "questioning",
) -> LibraryDoc:
    return LibraryDoc(
        clip=clip,
        trust=trust,
        title=title,
        description=description,
        summary=summary,
        notes=notes,
        tags=tags,
        framework=framework,
        published=published,
    )


def test_put_search_replace_remove(index: LibraryIndex) -> None:
    index.put(doc("k1", 1.0, title="Fractions with Year 5", notes=("pupils explain halves",)))
    index.put(doc("k2", 2.0, title="Photosynthesis", description="light and leaves"))
    assert index.count("north") == 2
    assert index.search("north", "fractions") == ["k1"]
    assert index.search("north", "halves") == ["k1"]
    assert index.search("north", "leaves") == ["k2"]

    index.put(doc("k1", 3.0, title="Equivalent fractions", notes=("wait time after asking",)))
    assert index.count("north") == 2
    assert index.search("north", "halves") == []  # the old text is gone with the old doc
    assert index.search("north", "wait") == ["k1"]
    assert index.search("north", "") == ["k1", "k2"]  # replaced: its new date counts

    index.remove("k1")
    assert index.count("north") == 1
    assert index.search("north", "fractions") == []
    assert index.search("north", "") == ["k2"]
    index.remove("k1")  # again, and an unknown clip: nothing happens
    index.remove("nope")
    assert index.count("north") == 1


def test_replacing_drops_old_tags_and_framework(index: LibraryIndex) -> None:
    index.put(doc("k1", 1.0, tags=("wait-time",), framework="questioning"))
    index.put(doc("k1", 1.0, tags=("open-question",), framework="feedback"))
    assert index.search("north", "", tags=["wait-time"]) == []
    assert index.search("north", "", tags=["open-question"]) == ["k1"]
    assert index.search("north", "", framework="questioning") == []
    assert index.search("north", "", framework="feedback") == ["k1"]


def test_a_trust_sees_only_its_own(index: LibraryIndex) -> None:
    index.put(doc("k1", 1.0, trust="north", title="Fractions", tags=("wait-time",)))
    index.put(doc("k2", 2.0, trust="south", title="Fractions", tags=("wait-time",)))
    assert index.search("north", "fractions") == ["k1"]
    assert index.search("south", "fractions") == ["k2"]
    assert index.search("north", "") == ["k1"]
    assert index.search("north", "", tags=["wait-time"]) == ["k1"]
    assert index.search("east", "fractions") == []
    assert (index.count("north"), index.count("south"), index.count("east")) == (1, 1, 0)
    # A clip moved to another trust is found there only.
    index.put(doc("k1", 3.0, trust="south", title="Fractions"))
    assert index.search("north", "fractions") == []
    assert sorted(index.search("south", "fractions")) == ["k1", "k2"]


def test_every_word_must_match_in_any_field(index: LibraryIndex) -> None:
    index.put(doc("both", 1.0, title="Fractions", notes=("pupils discuss in pairs",)))
    index.put(doc("one", 2.0, title="Fractions", notes=("teacher explains",)))
    index.put(doc("other", 3.0, title="Decimals", summary="pairs work well"))
    assert index.search("north", "fractions pairs") == ["both"]
    assert index.search("north", "PAIRS   Fractions!") == ["both"]
    assert sorted(index.search("north", "pairs")) == ["both", "other"]
    assert index.search("north", "fractions pairs decimals") == []


def test_a_word_matches_as_a_prefix(index: LibraryIndex) -> None:
    index.put(doc("k1", 1.0, title="Questioning the class", notes=("probing follow-up",)))
    index.put(doc("k2", 2.0, title="Quiet reading"))
    assert index.search("north", "quest") == ["k1"]
    assert index.search("north", "prob fol") == ["k1"]
    assert sorted(index.search("north", "qu")) == ["k1", "k2"]
    assert index.search("north", "questioningly") == []  # a prefix of the query is not enough


def test_accents_and_case_are_folded(index: LibraryIndex) -> None:
    index.put(doc("k1", 1.0, title="Un élève explique", notes=("Naïve CAFÉ answers",)))
    # Full-width letters ("Wait") and a ligature ("fi"): NFKC folds them too.
    index.put(doc("k2", 2.0, title="\uff37\uff41\uff49\uff54 \ufb01ve seconds"))
    for q in ("eleve", "élève", "ÉLÈVE", "e\u0301le\u0300ve", "naive cafe", "CAFÉ"):
        assert index.search("north", q) == ["k1"], q
    assert index.search("north", "wait five") == ["k2"]


def test_title_ranks_above_description_and_summary_above_notes(index: LibraryIndex) -> None:
    index.put(doc("in-notes", 3.0, notes=("the fractions wall",)))
    index.put(doc("in-summary", 2.0, summary="fractions wall"))
    index.put(doc("in-title", 1.0, title="Fractions wall"))
    assert index.search("north", "fractions") == ["in-title", "in-summary", "in-notes"]


def test_tags_keep_docs_with_every_tag(index: LibraryIndex) -> None:
    index.put(doc("k1", 1.0, title="Maths", tags=("open-question", "open-question", "wait-time")))
    index.put(doc("k2", 2.0, title="Maths", tags=("open-question",)))
    index.put(doc("k3", 3.0, title="Maths", tags=("wait-time", "probing-follow-up")))
    index.put(doc("k4", 4.0, title="Maths"))
    assert index.search("north", "", tags=["open-question"]) == ["k2", "k1"]
    assert index.search("north", "", tags=("open-question", "wait-time")) == ["k1"]
    assert index.search("north", "", tags=["wait-time", "wait-time"]) == ["k3", "k1"]
    assert index.search("north", "maths", tags=["wait-time"]) in (["k3", "k1"], ["k1", "k3"])
    assert index.search("north", "maths", tags=["open-question", "probing-follow-up"]) == []
    assert index.search("north", "", tags=["pupil-to-pupil-question"]) == []
    assert index.search("north", "", tags=["open"]) == []  # a tag is exact, never a prefix


def test_framework_filter(index: LibraryIndex) -> None:
    index.put(doc("k1", 1.0, title="Maths", framework="questioning"))
    index.put(doc("k2", 2.0, title="Maths", framework="behaviour"))
    index.put(doc("k3", 3.0, title="Maths", framework=None))
    assert index.search("north", "", framework="questioning") == ["k1"]
    assert index.search("north", "maths", framework="behaviour") == ["k2"]
    assert index.search("north", "", framework="feedback") == []
    assert index.search("north", "") == ["k3", "k2", "k1"]


def test_newest_first_without_words_and_limit(index: LibraryIndex) -> None:
    for i in range(30):
        index.put(doc(f"k{i:02}", 1000.0 + (i * 7) % 30, title=f"Lesson {i}"))
    newest = [f"k{i:02}" for i in sorted(range(30), key=lambda i: -((i * 7) % 30))]
    assert index.search("north", "") == newest[:20]  # the default limit
    assert index.search("north", None, limit=5) == newest[:5]
    assert index.search("north", "", limit=100) == newest
    assert len(index.search("north", "lesson", limit=7)) == 7
    assert len(index.search("north", "lesson")) == 20
    with pytest.raises(InvalidField, match="limit"):
        index.search("north", "", limit=0)


def test_an_empty_query_lists_newest_first(index: LibraryIndex) -> None:
    index.put(doc("old", 1.0))
    index.put(doc("new", 2.0))
    for q in ("", "   ", None, "*", '"', "^", "-", "()", ":", "**", "!?"):
        assert index.search("north", q) == ["new", "old"], q


SYNTAX = (
    '"NEAR(a b)"',
    "NEAR(a b)",
    "title:x",
    "{title notes}: x",
    "a OR b",
    "a NOT b",
    "NOT b",
    "a AND",
    "x*",
    "*x",
    "-x",
    "^x",
    "x + y",
    '"x',
    'x" OR "a',
    "x'); DROP TABLE library_docs; --",
    "(a",
    "a)",
    "rank:1",
    "rowid",
    "\x00x",
)


@pytest.mark.parametrize("q", SYNTAX)
def test_fts_syntax_is_only_words(index: LibraryIndex, q: str) -> None:
    """Each query finds exactly the docs holding every one of its words (as prefixes), which
    is not what its characters would find read as syntax (OR, NOT, a column filter, NEAR, a
    phrase), nor an error."""
    index.put(doc("a", 1.0, title="a apple", notes=("x marks",)))
    index.put(doc("b", 2.0, title="b banana", summary="x marks"))
    index.put(doc("x", 3.0, title="x", description="y"))
    found = index.search("north", q)
    words = query_words(q)
    assert words, q
    expected = [
        clip
        for clip, text in (("a", "a apple x marks"), ("b", "b banana x marks"), ("x", "x y"))
        if all(any(t.startswith(w) for t in text.split()) for w in words)
    ]
    assert sorted(found) == expected, (q, words)
    assert index.count("north") == 3


def test_syntax_alone_never_raises(index: LibraryIndex) -> None:
    index.put(doc("k1", 1.0, title="Near the title", notes=("or not and",)))
    for q in ("NEAR", "OR", "AND", "NOT", "near or and not", "NEAR/3", '""', "'", "\\", "%_"):
        index.search("north", q)
    assert index.search("north", "NEAR") == ["k1"]
    assert index.search("north", "or not and") == ["k1"]


def test_a_query_over_200_characters_is_refused_naming_q(index: LibraryIndex) -> None:
    assert index.search("north", "a" * 200) == []
    with pytest.raises(InvalidField, match=r"^q\b") as refused:
        index.search("north", "a" * 201)
    assert refused.value.code == "invalid_field" and refused.value.http_status == 400


def test_at_most_20_words_are_used(index: LibraryIndex) -> None:
    index.put(doc("k1", 1.0, title=" ".join(f"w{i}" for i in range(20))))
    assert index.search("north", " ".join(f"w{i}" for i in range(20))) == ["k1"]
    # The 21st word is not searched: the doc lacks it and is still found.
    assert index.search("north", " ".join(f"w{i}" for i in range(20)) + " missing") == ["k1"]


def test_query_words() -> None:
    assert query_words("Élève, wait-time: 3s!") == ["élève", "wait", "time", "3s"]
    assert query_words('"NEAR(a b)" title:x -y ^z *') == ["near", "a", "b", "title", "x", "y", "z"]
    assert query_words("x_y") == ["x", "y"]
    assert query_words("数学の授業 हिन्दी") == ["数学の授業", "हिन्दी"]
    assert query_words("\u0301x") == ["x"]  # a mark with nothing before it is no word
    assert query_words(None) == [] and query_words("") == []
    assert len(query_words(" ".join("abcdefghijklmnopqrstuvwxyz"))) == 20
    assert match_expression(["a", "élève"]) == '"a"* AND "élève"*'


def test_non_latin_words_are_found(index: LibraryIndex) -> None:
    index.put(doc("k1", 1.0, title="数学の授業", notes=("हिन्दी में प्रश्न",)))
    assert index.search("north", "数学") == ["k1"]
    assert index.search("north", "हिन्दी प्रश्न") == ["k1"]


def test_a_file_index_outlives_its_connection(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    first = FtsIndex(path)
    first.put(doc("k1", 1.0, title="Fractions", tags=("wait-time",)))
    first.close()
    again = FtsIndex(path)
    try:
        assert again.search("north", "fractions", tags=["wait-time"]) == ["k1"]
        assert again.count("north") == 1
    finally:
        again.close()
