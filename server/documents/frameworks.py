"""Tag frameworks: the named sets of tags that annotations are coded with.

Frameworks are YAML or JSON files so a school can add its own without touching code. Every file
is validated when loaded, and a bad one is refused with a message naming the file and the field,
because the person fixing it is editing that file by hand.
"""

from __future__ import annotations

import builtins
import re
from pathlib import Path
from typing import Annotated, Any

import msgspec
import yaml

from server.errors import InvalidField, NotFound

BUILTIN_DIR = Path(__file__).parent / "frameworks"
SUFFIXES = (".yaml", ".yml", ".json")

# \A and \Z rather than ^ and $: `$` also matches before a trailing newline.
Id = Annotated[str, msgspec.Meta(pattern=r"\A[a-z0-9][a-z0-9_-]{0,39}\Z")]
Colour = Annotated[str, msgspec.Meta(pattern=r"\A#[0-9a-fA-F]{6}\Z")]
Key = Annotated[str, msgspec.Meta(pattern=r"\A\S\Z")]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]


class Group(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: Id
    label: Label


class Tag(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: Id
    label: Label
    colour: Colour
    key: Key
    group: Id | None = None


Descriptor = Annotated[str, msgspec.Meta(min_length=1, max_length=400)]
LevelNumber = Annotated[int, msgspec.Meta(ge=1, le=9)]


class Level(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One level of a rubric criterion: its number (1 the lowest) and what it looks like."""

    level: LevelNumber
    descriptor: Descriptor


class Criterion(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: Id
    label: Label
    levels: Annotated[list[Level], msgspec.Meta(min_length=2, max_length=9)]


class Rubric(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a lesson is scored on in a coaching cycle's review (docs/documents.md): each
    criterion with its levels, 1 to n."""

    criteria: Annotated[list[Criterion], msgspec.Meta(min_length=1, max_length=20)]


class Ratio(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A ratio of two tags' counts the cycle's progress shows (open to closed questions)."""

    id: Id
    label: Label
    numerator: Id
    denominator: Id


# Unknown fields are refused so a misspelt optional field ("color") is reported, not ignored.
class Framework(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: Id
    name: Label
    description: str = ""
    groups: list[Group] = []
    tags: Annotated[list[Tag], msgspec.Meta(min_length=1)]
    ratios: list[Ratio] = []
    rubric: Rubric | None = None


def load_framework(path: Path | str) -> Framework:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidField(f"{path}: cannot be read ({exc.strerror})") from None
    raw = _parse(path, data)
    if not isinstance(raw, dict):
        raise InvalidField(f"{path}: the top level must be a mapping, not {type(raw).__name__}")
    try:
        framework = msgspec.convert(raw, Framework)
    except msgspec.ValidationError as exc:
        raise InvalidField(f"{_where(path, data, str(exc))}: {exc}") from None
    try:
        _check_references(framework, path)
        _check_rubric(framework, path)
    except InvalidField as exc:
        raise InvalidField(
            f"{_where(path, data, exc.message)}{exc.message[len(str(path)) :]}"
        ) from None
    return framework


def as_meta(framework: Framework) -> dict[str, Any]:
    """Plain data for the room document's meta map, which cannot hold Structs."""
    meta: dict[str, Any] = msgspec.to_builtins(framework)
    return meta


class FrameworkLibrary:
    """Every framework found in the directories; a later directory overrides an earlier one."""

    def __init__(self, *directories: Path) -> None:
        self._frameworks: dict[str, Framework] = {}
        for directory in directories:
            self._frameworks.update(_load_directory(Path(directory)))

    def get(self, framework_id: str) -> Framework:
        try:
            return self._frameworks[framework_id]
        except KeyError:
            raise NotFound(f"no tag framework {framework_id[:40]!r}") from None

    # builtins.list: inside the class body, `list` is this method.
    def list(self) -> builtins.list[Framework]:
        return sorted(self._frameworks.values(), key=lambda framework: framework.id)


def _parse(path: Path, data: bytes) -> object:
    if path.suffix.lower() == ".json":
        try:
            return msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise InvalidField(f"{path}: not valid JSON ({exc})") from None
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise InvalidField(f"{path}: not valid YAML ({exc})") from None


def _check_references(framework: Framework, path: Path) -> None:
    """What msgspec cannot check field by field: uniqueness, and that tag groups exist."""
    groups: dict[str, int] = {}
    for i, group in enumerate(framework.groups):
        if group.id in groups:
            raise InvalidField(
                f"{path}: groups[{i}].id {group.id!r} is already used by groups[{groups[group.id]}]"
            )
        groups[group.id] = i
    ids: dict[str, int] = {}
    keys: dict[str, int] = {}
    for i, tag in enumerate(framework.tags):
        if tag.id in ids:
            raise InvalidField(
                f"{path}: tags[{i}].id {tag.id!r} is already used by tags[{ids[tag.id]}]"
            )
        ids[tag.id] = i
        # Case-folded because browsers report "a" or "A" depending on Shift and Caps Lock.
        key = tag.key.casefold()
        if key in keys:
            raise InvalidField(
                f"{path}: tags[{i}].key {tag.key!r} is already used by tags[{keys[key]}]"
            )
        keys[key] = i
        if tag.group is not None and tag.group not in groups:
            known = ", ".join(sorted(groups)) or "none are defined"
            raise InvalidField(
                f"{path}: tags[{i}].group {tag.group!r} is not one of the groups ({known})"
            )


def _check_rubric(framework: Framework, path: Path) -> None:
    """Ratios name tags of the framework; a rubric's criteria are unique and each one's levels
    run 1, 2, ... without a gap."""
    tags = {tag.id for tag in framework.tags}
    for i, ratio in enumerate(framework.ratios):
        for side in ("numerator", "denominator"):
            if getattr(ratio, side) not in tags:
                raise InvalidField(
                    f"{path}: ratios[{i}].{side} {getattr(ratio, side)!r} is not a tag of it"
                )
    if framework.rubric is None:
        return
    seen: dict[str, int] = {}
    for i, criterion in enumerate(framework.rubric.criteria):
        if criterion.id in seen:
            raise InvalidField(
                f"{path}: rubric.criteria[{i}].id {criterion.id!r} is already used by "
                f"rubric.criteria[{seen[criterion.id]}]"
            )
        seen[criterion.id] = i
        numbers = [level.level for level in criterion.levels]
        if numbers != list(range(1, len(numbers) + 1)):
            raise InvalidField(
                f"{path}: rubric.criteria[{i}].levels must be numbered 1 to {len(numbers)} "
                f"in order, not {numbers}"
            )


_PATH_PART = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]")


def _where(path: Path, data: bytes, message: str) -> str:
    """`file:line` of the place a message's `$.a.b[2]` or `a.b[2]` path names, when the file
    is YAML and the place can be found; the file alone otherwise (the person fixing it has the
    file open in an editor)."""
    found = re.search(r"`\$((?:\.[\w-]+|\[\d+\])+)`", message) or re.search(
        r": ((?:[a-z_]+(?:\[\d+\])?)(?:\.[a-z_]+(?:\[\d+\])?)*) ", message
    )
    if found is None or path.suffix.lower() == ".json":
        return str(path)
    dotted = found.group(1) if found.group(1).startswith((".", "[")) else "." + found.group(1)
    try:
        node = yaml.compose(data)
    except yaml.YAMLError:
        return str(path)
    for key, index in _PATH_PART.findall(dotted):
        if key and isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            node = node.value[int(index)]
        else:
            node = None
        if node is None:
            return str(path)
    return f"{path}:{node.start_mark.line + 1}" if node is not None else str(path)


def _load_directory(directory: Path) -> dict[str, Framework]:
    # A directory that does not exist is an empty one: the site directory is optional.
    if not directory.is_dir():
        return {}
    found: dict[str, tuple[Path, Framework]] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in SUFFIXES or not path.is_file():
            continue
        framework = load_framework(path)
        if framework.id in found:
            raise InvalidField(
                f"{path}: id {framework.id!r} is already used by {found[framework.id][0]}"
            )
        found[framework.id] = (path, framework)
    return {framework_id: framework for framework_id, (_, framework) in found.items()}
