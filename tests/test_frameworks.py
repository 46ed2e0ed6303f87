"""Tag frameworks: the shipped ones load, bad files are refused by name, directories override."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import msgspec
import pytest

from server.documents.frameworks import (
    BUILTIN_DIR,
    Framework,
    FrameworkLibrary,
    as_meta,
    load_framework,
)
from server.errors import InvalidField, NotFound

SHIPPED = {
    "questioning": [
        "Open question",
        "Closed question",
        "Probing follow-up",
        "Wait time ≥ 3 s",
        "Pupil-to-pupil question",
    ],
    "behaviour": [
        "Routine",
        "Praise (specific)",
        "Correction (private)",
        "Disruption",
        "Transition",
    ],
    "feedback": ["Verbal feedback", "Written feedback", "Self-assessment", "Peer assessment"],
}

GOOD = """\
id: demo
name: Demo
groups:
  - id: g1
    label: Group one
tags:
  - id: t1
    label: Tag one
    colour: "#112233"
    key: "1"
    group: g1
  - id: t2
    label: Tag two
    colour: "#aabbcc"
    key: "a"
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_shipped_frameworks_load() -> None:
    library = FrameworkLibrary(BUILTIN_DIR)
    assert [f.id for f in library.list()] == sorted(SHIPPED)
    for framework_id, labels in SHIPPED.items():
        framework = library.get(framework_id)
        assert [t.label for t in framework.tags] == labels
        group_ids = {g.id for g in framework.groups}
        for tag in framework.tags:
            assert tag.group in group_ids
            assert len(tag.key) == 1 and tag.key.isalnum()
        assert len({t.colour.lower() for t in framework.tags}) == len(framework.tags)
        for tag in framework.tags:
            # WCAG AA against white, so the colour works as text on white or behind white text.
            assert 1.05 / (luminance(tag.colour) + 0.05) >= 4.5, tag.colour


def test_shipped_colours_are_far_apart() -> None:
    for framework in FrameworkLibrary(BUILTIN_DIR).list():
        for a, b in combinations(framework.tags, 2):
            rgb_a = [int(a.colour[i : i + 2], 16) for i in (1, 3, 5)]
            rgb_b = [int(b.colour[i : i + 2], 16) for i in (1, 3, 5)]
            assert sum(abs(x - y) for x, y in zip(rgb_a, rgb_b, strict=True)) > 80, (a.id, b.id)


def test_as_meta_is_plain_data_that_round_trips() -> None:
    framework = load_framework(BUILTIN_DIR / "feedback.yaml")
    meta = as_meta(framework)
    assert meta["id"] == "feedback"
    assert meta["tags"][0] == {
        "id": "verbal-feedback",
        "label": "Verbal feedback",
        "colour": "#1F5FAD",
        "key": "1",
        "group": "teacher",
    }
    assert msgspec.convert(meta, Framework) == framework


def test_good_yaml_and_json_load(tmp_path: Path) -> None:
    framework = load_framework(write(tmp_path, "demo.yml", GOOD))
    assert framework.description == ""
    assert framework.tags[1].group is None
    json_text = '{"id": "j", "name": "J", "tags": [{"id": "x", "label": "X", '
    json_text += '"colour": "#000000", "key": "x"}]}'
    assert load_framework(write(tmp_path, "j.json", json_text)).groups == []


RUBRIC = """rubric:
  criteria:
    - id: reach
      label: Reach
      levels:
        - level: 1
          descriptor: Few pupils
        - level: 2
          descriptor: Most pupils
"""
RATIO = """ratios:
  - id: one-to-two
    label: One to two
    numerator: t1
    denominator: t2
"""


BAD: list[tuple[str, str, str, str]] = [
    ("bad-colour", "demo.yaml", GOOD.replace('"#112233"', '"red"'), "$.tags[0].colour"),
    ("short-colour", "demo.yaml", GOOD.replace('"#112233"', '"#12345"'), "$.tags[0].colour"),
    ("duplicate-key", "demo.yaml", GOOD.replace('key: "a"', 'key: "1"'), "tags[1].key '1'"),
    ("key-case", "demo.yaml", GOOD.replace('key: "1"', 'key: "A"'), "tags[1].key 'a'"),
    ("long-key", "demo.yaml", GOOD.replace('key: "a"', 'key: "ab"'), "$.tags[1].key"),
    ("unquoted-digit", "demo.yaml", GOOD.replace('key: "1"', "key: 1"), "$.tags[0].key"),
    ("unknown-group", "demo.yaml", GOOD.replace("group: g1", "group: g2"), "tags[0].group 'g2'"),
    ("duplicate-tag", "demo.yaml", GOOD.replace("id: t2", "id: t1"), "tags[1].id 't1'"),
    ("bad-id", "demo.yaml", GOOD.replace("id: demo", "id: Demo Framework"), "$.id"),
    ("id-newline", "demo.yaml", GOOD.replace("id: demo", 'id: "demo\\n"'), "$.id"),
    ("missing-colour", "demo.yaml", GOOD.replace('    colour: "#aabbcc"\n', ""), "`colour`"),
    ("missing-name", "demo.yaml", GOOD.replace("name: Demo\n", ""), "`name`"),
    ("misspelt-field", "demo.yaml", GOOD.replace('colour: "#aabbcc"', "color: x"), "color"),
    ("no-tags", "demo.yaml", "id: demo\nname: Demo\ntags: []\n", "$.tags"),
    ("not-yaml", "demo.yaml", "id: [unclosed\nname: {", "not valid YAML"),
    ("not-a-mapping", "demo.yaml", "- just\n- a list\n", "top level must be a mapping"),
    ("empty", "demo.yaml", "", "top level must be a mapping"),
    ("not-json", "demo.json", "{id: demo", "not valid JSON"),
    # Rubrics and ratios: a malformed one is refused, naming the file, the line and the field.
    (
        "rubric-level-text",
        "demo.yaml",
        GOOD + RUBRIC.replace("level: 2", "level: two"),
        "demo.yaml:23",
    ),
    ("rubric-gap", "demo.yaml", GOOD + RUBRIC.replace("level: 2", "level: 3"), "numbered 1 to 2"),
    ("rubric-one-level", "demo.yaml", GOOD + RUBRIC.split("        - level: 2")[0], "levels"),
    (
        "rubric-same-criterion",
        "demo.yaml",
        GOOD + RUBRIC + RUBRIC.split("criteria:\n")[1],
        "demo.yaml:25: rubric.criteria[1].id 'reach'",
    ),
    ("ratio-unknown-tag", "demo.yaml", GOOD + RATIO.replace("t2", "t9"), "demo.yaml:20"),
]


@pytest.mark.parametrize(("name", "text", "needle"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_files_name_file_and_field(tmp_path: Path, name: str, text: str, needle: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(InvalidField) as caught:
        load_framework(path)
    assert str(path) in caught.value.message
    assert needle in caught.value.message


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidField, match="cannot be read"):
        load_framework(tmp_path / "missing.yaml")


def test_later_directories_override_earlier(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write(first, "demo.yaml", GOOD.replace("name: Demo", "name: First"))
    write(first, "only-first.yaml", GOOD.replace("id: demo", "id: only-first"))
    write(second, "renamed.yaml", GOOD.replace("name: Demo", "name: Second"))
    write(second, "README.md", "not a framework")
    write(second, ".demo.yaml.swp", "junk")

    assert FrameworkLibrary(first, second).get("demo").name == "Second"
    assert FrameworkLibrary(second, first).get("demo").name == "First"
    library = FrameworkLibrary(BUILTIN_DIR, first, second, tmp_path / "does-not-exist")
    assert [f.id for f in library.list()] == [
        "behaviour",
        "demo",
        "feedback",
        "only-first",
        "questioning",
    ]
    # A site directory can replace a shipped framework by reusing its id.
    write(second, "mine.yaml", GOOD.replace("id: demo", "id: feedback"))
    assert FrameworkLibrary(BUILTIN_DIR, second).get("feedback").name == "Demo"


def test_same_id_twice_in_one_directory_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yml", GOOD)
    with pytest.raises(InvalidField, match="already used by"):
        FrameworkLibrary(tmp_path)


def test_bad_file_in_a_directory_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD.replace('"#112233"', '"red"'))
    with pytest.raises(InvalidField, match=r"a\.yaml"):
        FrameworkLibrary(tmp_path)


def test_unknown_framework_is_not_found() -> None:
    with pytest.raises(NotFound, match="no-such-framework"):
        FrameworkLibrary(BUILTIN_DIR).get("no-such-framework")


def test_the_shipped_rubrics_and_ratios_load() -> None:
    questioning = FrameworkLibrary(BUILTIN_DIR).get("questioning")
    assert questioning.ratios[0].numerator == "open-question"
    for framework in FrameworkLibrary(BUILTIN_DIR).list():
        assert framework.rubric is not None, framework.id
        for criterion in framework.rubric.criteria:
            assert [level.level for level in criterion.levels] == [1, 2, 3, 4]
