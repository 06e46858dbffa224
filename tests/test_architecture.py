"""The architecture contract: one-way data flow, no import cycles, modules readable in one sitting.

The import graph is grimp's (the library under import-linter, whose contracts in pyproject.toml
``make test`` also runs): every import of a thetanet module counts, also those inside functions,
except the ones under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_LINES = 500
#: Above the engine: the applications, the command line and the optional ecosystem modules.
NOT_ENGINE = ("cli", "arena", "compounds", "captions", "examples", "search", "data", "sklearn",
              "onnx", "keras_convert", "plots")


@pytest.fixture(scope="module")
def graph():
    g = grimp.build_graph("thetanet", exclude_type_checking_imports=True, cache_dir=None)
    import thetanet

    # the graph must describe this checkout, not another installed copy

    assert Path(thetanet.__file__).resolve().is_relative_to(SRC)
    return g


def _edges(graph) -> dict[str, set[str]]:
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components (iterative), each as a sorted list of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                out.append(sorted(comp))
    return out


def _shortest_cycle(edges: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """The shortest path start → … → start inside ``within`` (BFS)."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(edges[node] & within):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return [start]


def _render(graph, path: list[str]) -> str:
    """"a -(l.12)-> b -(l.3)-> a": each step with the line(s) of its import."""
    text = path[0]
    for a, b in zip(path, path[1:]):
        lines = sorted({d["line_number"] for d in graph.get_import_details(importer=a,
                                                                            imported=b)})
        text += f" -(l.{','.join(map(str, lines))})-> {b}"
    return text


def test_strongly_connected_finds_a_planted_cycle():
    # the checker itself: a → b → c → a is one component, d and e are not
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": set()}
    comps = _strongly_connected(edges)
    assert ["a", "b", "c"] in comps and ["d"] in comps and ["e"] in comps
    assert _shortest_cycle(edges, "b", {"a", "b", "c"}) == ["b", "c", "a", "b"]


def test_no_import_cycles(graph):
    edges = _edges(graph)
    cycles = []
    for comp in _strongly_connected(edges):
        if len(comp) > 1 or comp[0] in edges[comp[0]]:
            cycles.append(f"{len(comp)} modules {comp}: e.g. "
                          + _render(graph, _shortest_cycle(edges, comp[0], set(comp))))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _is_engine(module: str) -> bool:
    return not any(module == f"thetanet.{n}" or module.startswith(f"thetanet.{n}.")
                   for n in NOT_ENGINE)


def test_engine_never_imports_the_layers_above_it(graph):
    # the engine (activations … saving, and the package's __init__) knows nothing about
    # compounds, data, examples, the CLI, search, plotting or the ecosystem converters
    engine = sorted(m for m in graph.modules if _is_engine(m))
    assert {"thetanet", "thetanet.model", "thetanet.layers"} <= set(engine)
    above = {m for m in graph.modules if not _is_engine(m)}
    assert "thetanet.cli" in above and "thetanet.compounds" in above
    broken = []
    for m in engine:
        seen = set(graph.find_modules_directly_imported_by(m))
        queue = deque(seen)
        while queue:
            for nxt in graph.find_modules_directly_imported_by(queue.popleft()):
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        if seen & above:
            chain = graph.find_shortest_chain(importer=m, imported=min(seen & above))
            broken.append(_render(graph, list(chain)))
    assert not broken, "engine modules reaching the layers above:\n" + "\n".join(broken)


def test_every_module_under_500_lines():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20
    long = {str(p.relative_to(SRC)): n for p in files
            if (n := len(p.read_text(encoding="utf-8").splitlines())) >= MAX_LINES}
    assert not long, f"modules of {MAX_LINES} lines or more: {long}"
