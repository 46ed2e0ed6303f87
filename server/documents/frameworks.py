"""Tag frameworks: the named sets of tags that annotations are coded with.

Frameworks are YAML or JSON files so a school can add its own without touching code. Every file
is validated when loaded, and a bad one is refused with a message naming the file and the field,
because the person fixing it is editing that file by hand.
"""

from __future__ import annotations

import builtins
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


# Unknown fields are refused so a misspelt optional field ("color") is reported, not ignored.
class Framework(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: Id
    name: Label
    description: str = ""
    groups: list[Group] = []
    tags: Annotated[list[Tag], msgspec.Meta(min_length=1)]


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
        raise InvalidField(f"{path}: {exc}") from None
    _check_references(framework, path)
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
