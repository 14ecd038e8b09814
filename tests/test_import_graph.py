"""The core's import graph: no cycle, no plug-in, and layers that only import downwards.

Every import counts, those inside functions included (a function-level import is a
cycle postponed, not removed); only ``if TYPE_CHECKING:`` blocks are left aside.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "spl_sdk"
# modules that import nothing of spl_sdk but each other: any module may use them
LEAVES = {"spl_sdk.errors", "spl_sdk.lazy", "spl_sdk.strict", "spl_sdk.text", "spl_sdk.words",
          "spl_sdk.rawoptions", "spl_sdk.parsing", "spl_sdk.version", "spl_sdk.renamed"}


def _name(path: Path) -> str:
    parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(sub) for sub in ast.walk(node))
    return skipped


def imported(path: Path, modules: set[str]) -> tuple[set[str], set[str]]:
    """(spl_sdk modules, other top-level packages) that the file at ``path`` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = _name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    skipped = _type_checking_nodes(tree)
    core, other = set(), set()
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:  # relative: from the package up
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            subs = [f"{base}.{alias.name}" for alias in node.names]
            # "from pkg import submodule" depends on the submodule; any other name on pkg itself
            names = subs + ([base] if any(s not in modules for s in subs) else [])
        for name in names:
            if not name.startswith("spl_sdk"):
                other.add(name.split(".")[0])
                continue
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != me:
                core.add(name)
    return core, other


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Each core module's spl_sdk imports, and its other top-level imports."""
    files = sorted(CORE.rglob("*.py"))
    modules = {_name(f) for f in files}
    core, other = {}, {}
    for f in files:
        core[_name(f)], other[_name(f)] = imported(f, modules)
    return core, other


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
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
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
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
                if len(component) > 1:
                    found.append(sorted(component))
    return found


@pytest.fixture(scope="module")
def graphs() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    return import_graph()


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_function_level_imports_count_and_type_checking_ones_do_not(tmp_path) -> None:
    source = CORE / "errors.py"  # any real module path gives the right package
    probe = source.with_name("_probe_import_graph.py")
    probe.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from spl_sdk import config\n"
                     "def f():\n    from spl_sdk.options import construct\n", encoding="utf-8")
    try:
        core, _ = imported(probe, {"spl_sdk", "spl_sdk.config", "spl_sdk.options"})
    finally:
        probe.unlink()
    assert core == {"spl_sdk.options"}


def test_spl_sdk_has_no_import_cycle(graphs) -> None:
    core, _ = graphs
    assert cycles(core) == []


def test_the_core_never_imports_a_plugin_and_only_spl_app_the_studio(graphs) -> None:
    _, other = graphs
    plugin_packages = {p.name for p in (CORE.parent / "plugins").iterdir() if p.name.startswith("spl_")}
    plugin_packages |= {"spl_comfy"}
    offending = {m: sorted(names & plugin_packages) for m, names in other.items() if names & plugin_packages}
    assert offending == {}
    assert [m for m, names in other.items() if "spl_apps" in names] == ["spl_sdk.cli.app"]  # it starts it


def test_layers_import_only_downwards(graphs) -> None:
    core, _ = graphs
    for module, names in core.items():
        if module in LEAVES:  # leaves: only other leaves
            assert names <= LEAVES, (module, names - LEAVES)
        if module.startswith("spl_sdk.components"):  # components: each other and the leaves
            assert all(n.startswith("spl_sdk.components") or n in LEAVES for n in names), (module, names)
        if not module.startswith("spl_sdk.cli"):  # nothing below the CLI imports it
            assert not any(n.startswith("spl_sdk.cli") for n in names), module
    for lower in ("spl_sdk.editor", "spl_sdk.plan", "spl_sdk.jobs.worker", "spl_sdk.jobs.runner"):
        assert not any(n.startswith(("spl_sdk.cli", "spl_sdk.metrics")) for n in core[lower]), lower
    assert not any(n.startswith("spl_sdk.metrics") for m, names in core.items()
                   if m.startswith("spl_sdk.jobs") for n in names)  # metrics read jobs, not back
