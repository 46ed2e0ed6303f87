"""The import rule of docs/architecture.md, read from the code itself with `ast`.

Every `import` counts, including those under `if TYPE_CHECKING:`: a type-only import still
ties two modules together. Run it as a script to see the package graph and any breach:

    .venv/bin/python -m tests.test_layers
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "server"

# Top to bottom. A module may import modules of its own group and of any group below it,
# never above: that is what makes the graph point one way.
LAYERS: list[tuple[str, frozenset[str]]] = [
    (
        "entry points",
        frozenset(
            {
                "app",
                "cli",
                "commands",
                "first_run",
                "worker_main",
                "drain",
                "supervisor",
                "preflight",
            }
        ),
    ),
    ("routes", frozenset({"http"})),
    ("shells and composition", frozenset({"session"})),
    (
        "services",
        frozenset(
            {
                "media",
                "library",
                "documents",
                "people",
                "cycles",
                "clips",
                "audit",
                "metrics",
                "edge",
            }
        ),
    ),
    ("rules and backends", frozenset({"rooms", "orgs", "tokens", "sync", "worker_wire"})),
    (
        "wire formats and foundations",
        frozenset(
            {
                "codec",
                "media_wire",
                "yjs_wire",
                "messages",
                "errors",
                "settings",
                "web_dist",
                "logs",
                "once",
                "lifeline",
                "",
            }
        ),
    ),
]

# What `server/media/` may use of `server/sync/`: record types and Protocols, no backend.
MEDIA_MAY_USE_OF_SYNC = frozenset({"server.sync.audit", "server.sync.store"})


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in ROOT.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The server modules `name` imports (a `from package import module` names the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "server")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "server":
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                yield full if full in known else target


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {
        name: {m for m in imports_of(name, path, known) if m != name and m in known}
        for name, path in found.items()
    }


def group_of(module: str) -> str:
    """`server.session.home` -> `session`; `server.codec` -> `codec`; `server` -> ``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(module: str) -> int:
    group = group_of(module)
    for index, (_, members) in enumerate(LAYERS):
        if group in members:
            return index
    raise AssertionError(f"{module}: its package {group!r} is in no layer; add it to LAYERS")


def upward(edges: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{a} -> {b}" for a, targets in edges.items() for b in targets if layer_of(b) < layer_of(a)
    )


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_package_has_a_layer() -> None:
    for module in graph():
        layer_of(module)


def test_no_import_points_upward() -> None:
    assert upward(graph()) == []


def test_no_import_circle() -> None:
    assert cycles(graph()) == []


def test_only_the_app_and_the_routes_know_the_worker() -> None:
    users = {a for a, targets in graph().items() if "server.session.worker" in targets}
    assert {u for u in users if u != "server.app" and group_of(u) != "http"} == set()


def test_nothing_but_the_app_imports_the_routes() -> None:
    users = {a for a, targets in graph().items() for b in targets if group_of(b) == "http"} - {
        "server.app"
    }
    assert {u for u in users if group_of(u) != "http"} == set()


def test_media_is_only_media() -> None:
    """aiortc and PyAV, records and Protocols: no worker, no route, no library, no backend."""
    breaches = [
        f"{a} -> {b}"
        for a, targets in graph().items()
        if group_of(a) == "media"
        for b in targets
        if group_of(b) in {"session", "http", "library"}
        or (group_of(b) == "sync" and b not in MEDIA_MAY_USE_OF_SYNC)
    ]
    assert breaches == []


def test_the_rules_stay_pure_of_services() -> None:
    """The room's rules import only wire formats, errors and their own modules."""
    for a, targets in graph().items():
        if group_of(a) == "rooms":
            assert {group_of(b) for b in targets} <= {"rooms", "messages", "errors"}, a


def test_the_rule_catches_a_breach() -> None:
    """The checks above would see an upward import and a circle, were there one."""
    edges = {"server.rooms.room": {"server.session.home"}, "server.session.home": set()}
    assert upward(edges) == ["server.rooms.room -> server.session.home"]
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]


if __name__ == "__main__":
    edges = graph()
    packages: dict[str, set[str]] = {}
    for a, targets in edges.items():
        for b in targets:
            if group_of(a) != group_of(b):
                packages.setdefault(group_of(a) or "server", set()).add(group_of(b) or "server")
    for name, (title, _) in enumerate(LAYERS):
        print(f"layer {name}: {title}")
    for package in sorted(packages):
        print(f"  {package} -> {', '.join(sorted(packages[package]))}")
    print("upward:", upward(edges) or "none")
    print("circles:", cycles(edges) or "none")
