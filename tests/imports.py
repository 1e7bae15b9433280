"""The runtime import graph of a package, read with ``ast``, and the cycles in it.

Every ``import`` / ``from ... import`` counts, at module level or inside a function,
except those under ``if TYPE_CHECKING:``: they never run, so they cannot form a cycle.

Run as a script to print the cycles of ``monitor/``: ``python -m tests.imports [DIR]``.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path


def module_names(package_dir: Path) -> dict[str, Path]:
    """Every module of the package under ``package_dir`` by dotted name (packages by their own name)."""
    root = Path(package_dir)
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements under ``node`` that run, leaving out ``if TYPE_CHECKING:`` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for orelse in child.orelse:  # the else branch does run
                yield from _runtime_imports(ast.Module(body=[orelse], type_ignores=[]))
        else:
            yield from _runtime_imports(child)


def _base(module: str, is_package: bool, statement: ast.ImportFrom) -> str:
    """The absolute module a ``from`` statement imports from (relative levels resolved)."""
    if not statement.level:
        return statement.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - statement.level + 1]
    return ".".join([*parts, statement.module] if statement.module else parts)


def _targets(module: str, is_package: bool, statement: ast.Import | ast.ImportFrom,
             known: Mapping[str, Path]) -> set[str]:
    """The package's modules ``statement`` imports: ``from a import b`` means ``a.b`` when that is a module."""
    if isinstance(statement, ast.Import):
        return {alias.name for alias in statement.names if alias.name in known}
    base = _base(module, is_package, statement)
    found = set()
    for alias in statement.names:
        name = f"{base}.{alias.name}"
        if name in known:
            found.add(name)
        elif base in known:
            found.add(base)
    return found


def import_graph(package_dir: Path | str) -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports at run time."""
    known = module_names(Path(package_dir))
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        edges = set()
        for statement in _runtime_imports(tree):
            edges |= _targets(module, is_package, statement, known)
        edges.discard(module)
        graph[module] = edges
    return graph


def _strong_components(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def _shortest_cycle(graph: Mapping[str, set[str]], start: str, within: set[str]) -> list[str]:
    """The shortest path ``start → … → start`` inside ``within``, as a closed list of names."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph.get(node, ())):
            if child not in within:
                continue
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    return []


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Import cycles as closed paths (``[a, b, a]``): the shortest through each module of a cycle, deduplicated."""
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for component in _strong_components(graph):
        if len(component) < 2:
            continue
        members = set(component)
        for start in component:
            cycle = _shortest_cycle(graph, start, members)
            if cycle and frozenset(cycle) not in seen:
                seen.add(frozenset(cycle))
                cycles.append(cycle)
    return cycles


def main(argv: list[str]) -> int:
    """Print each import cycle of the package directory given (default ``monitor``); 1 if any."""
    package_dir = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "monitor"
    cycles = find_cycles(import_graph(package_dir))
    for cycle in cycles:
        print(" -> ".join(cycle))
    print(f"{len(cycles)} import cycle(s) in {package_dir}")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
