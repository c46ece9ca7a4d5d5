"""The import graph of `sluice` (run-time imports; `if TYPE_CHECKING:` imports excluded):
zero cycles between its packages, and the layer contracts of pyproject.toml kept.

A node is a top-level package or module (`sluice.cache`, `sluice.gateway`), except the
feature settings modules that the root config includes (the "schemas" contract lists them):
those are their own nodes, since `sluice.config` is core and they are leaves.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

import grimp
import pytest

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads(PYPROJECT.read_text())
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _schema_modules() -> set[str]:
    (schemas,) = [c for c in _contracts() if c["id"] == "schemas"]
    sources = schemas["source_modules"]
    assert isinstance(sources, list)
    return {str(m) for m in sources}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("sluice", exclude_type_checking_imports=True, cache_dir=None)


def package_edges(graph: grimp.ImportGraph, own_nodes: set[str]) -> dict[str, set[str]]:
    def node(module: str) -> str:
        return module if module in own_nodes else ".".join(module.split(".")[:2])

    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = node(module), node(imported)
            if a != b and "sluice" not in (a, b):
                edges.setdefault(a, set()).add(b)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    nodes = sorted({*edges, *(b for targets in edges.values() for b in targets)})
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            child = next(iter(children), None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}}) == []


def test_no_cycles_between_packages(graph: grimp.ImportGraph) -> None:
    edges = package_edges(graph, _schema_modules())
    found = cycles(edges)
    detail = {" ↔ ".join(c): {a: sorted(edges[a] & set(c)) for a in c if a in edges} for c in found}
    assert found == [], f"import cycles between sluice's packages: {detail}"


def test_layer_contracts_are_kept() -> None:
    """`lint-imports` (also run by `make lint`) keeps every contract."""
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", "--no-logo"]
    run = subprocess.run(
        [*command, str(PYPROJECT)],
        cwd=PYPROJECT.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
