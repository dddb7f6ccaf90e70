"""The import graph of `src/sluicegate` between its packages: no cycle, and every arrow down.

A node is a subpackage (`routing`) or a top-level module (`gateway`); `api/serving/` is its own
node, the layer every door shares. The process shell (the CLI, its commands, the server and its
workers, the app factory) is one node, `entry`: its modules start each other lazily, and nothing
below imports them. Imports under `if TYPE_CHECKING:` are counted apart: they
must point down too, but only the runtime graph could deadlock an import. Run this file as a
script to print both graphs.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "sluicegate"

# top to bottom: a node may import only nodes of a lower layer (or its own package)
LAYERS: list[set[str]] = [
    {"entry"},  # processes and commands
    {"api"},  # the doors
    {"api.serving"},  # what every door shares
    {"gateway"},  # the gateway's parts, put together
    {"settings"},  # the config file
    {"governance", "observability", "config_errors"},  # hooks around an exchange; config errors
    {"wiring"},  # model entries -> routers over providers
    {"routing"},  # retries, fail-over, fallbacks, cooldowns
    {"providers"},  # upstreams and the embedded model
    {"model_config", "store"},  # the model-entry config both routing and providers read; storage
    {"core", "http", "suggest", "field_paths", "extras"},
    {"errors"},
]
ENTRY = {"cli", "commands", "operator", "server", "workers", "app", "web"}
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}

Graph = dict[str, set[str]]


def _node(module: str) -> str | None:
    parts = module.split(".")[1:]
    if not parts:
        return None
    if parts[:2] == ["api", "serving"]:
        return "api.serving"
    return "entry" if parts[0] in ENTRY else parts[0]


def _module_of(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(child) for statement in node.body for child in ast.walk(statement))
    return inside


def import_graphs() -> tuple[Graph, Graph]:
    """(runtime arrows, arrows only under TYPE_CHECKING) between nodes; lazy imports inside
    functions count as runtime."""
    runtime: Graph = defaultdict(set)
    typing_only: Graph = defaultdict(set)
    for path in sorted(SOURCE.rglob("*.py")):
        source = _node(_module_of(path))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        checking = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                target = _node(name) if name.startswith("sluicegate.") else None
                if source and target and target != source:
                    (typing_only if id(node) in checking else runtime)[source].add(target)
    typing_only = {source: targets - runtime.get(source, set()) for source, targets in typing_only.items()}
    return dict(runtime), {source: targets for source, targets in typing_only.items() if targets}


def _cycle(graph: Graph) -> list[str] | None:
    """One cycle of `graph`, as the path that closes it; None if it has none."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _upward(graph: Graph) -> list[str]:
    return [
        f"{source} -> {target}"
        for source, targets in sorted(graph.items())
        for target in sorted(targets)
        if RANK[target] <= RANK[source]
    ]


def test_every_node_has_a_layer() -> None:
    runtime, typing_only = import_graphs()
    nodes = set(runtime) | set(typing_only) | {t for g in (runtime, typing_only) for ts in g.values() for t in ts}
    assert nodes - set(RANK) == set()


def test_the_runtime_imports_have_no_cycle() -> None:
    runtime, _ = import_graphs()
    assert _cycle(runtime) is None


def test_every_import_points_down_the_layers() -> None:
    runtime, typing_only = import_graphs()
    assert _upward(runtime) == []
    assert _upward(typing_only) == []


def main() -> None:
    runtime, typing_only = import_graphs()
    for title, graph in (("runtime", runtime), ("under TYPE_CHECKING only", typing_only)):
        print(title)
        for source in sorted(graph, key=lambda name: (RANK.get(name, -1), name)):
            print(f"  {source} -> {', '.join(sorted(graph[source], key=lambda name: (RANK.get(name, -1), name)))}")
    print("cycle:", " -> ".join(_cycle(runtime) or ["none"]))
    print("upward:", ", ".join(_upward(runtime) + _upward(typing_only)) or "none")


if __name__ == "__main__":
    sys.exit(main())
