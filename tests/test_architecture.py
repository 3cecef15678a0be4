"""The layering anyone can draw, checked: no import cycle, one direction between
layers, nothing imports the CLI, and source files that fit in a reader's head."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "greensed"


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports() -> dict[str, set[str]]:
    """Module -> greensed modules it imports (at module level or inside functions)."""
    mods = {module_name(p): p for p in PKG.rglob("*.py")}
    out: dict[str, set[str]] = {}
    for name, path in mods.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import submodule` depends on the submodule, not on the
                # package's __init__ (which merely re-exports).
                subs = [f"{node.module}.{a.name}" for a in node.names]
                targets = [t for t in subs if t in mods] or [node.module]
            else:
                continue
            found.update(t for t in targets if t in mods and t != name)
        out[name] = found
    return out


def test_no_import_cycle():
    graph = imports()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle.extend(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
                return True
            if nxt not in state and visit(nxt, [*path, nxt]):
                return True
        state[node] = 2
        return False

    for mod in sorted(graph):
        if mod not in state and visit(mod, [mod]):
            break
    assert not cycle, " -> ".join(cycle)


@pytest.mark.parametrize(("layer", "forbidden"), [
    ("greensed.runlog", ("greensed.train", "greensed.study", "greensed.launch", "greensed.data")),
    ("greensed.stopping", ("greensed.train", "greensed.study", "greensed.launch", "greensed.data",
                           "greensed.energy")),
    ("greensed.energy", ("greensed.train", "greensed.study", "greensed.launch",
                         "greensed.stopping")),
    ("greensed.study", ("greensed.train", "greensed.launch", "greensed.data", "greensed.model")),
    ("greensed.launch", ("greensed.study",)),
    ("greensed.data", ("greensed.train", "greensed.model", "greensed.study", "greensed.launch")),
    ("greensed.model", ("greensed.train", "greensed.data", "greensed.study", "greensed.launch")),
    ("greensed.train", ("greensed.launch", "greensed.study")),
    # What any loop stands on, greensed's own included: it reaches into no loop.
    ("greensed.library", ("greensed.train", "greensed.launch", "greensed.study",
                          "greensed.data", "greensed.model")),
    # The Lightning callback is a loop of its own, on the library beside greensed's.
    ("greensed.lightning", ("greensed.train",)),
])
def test_layers_import_in_one_direction(layer, forbidden):
    bad = sorted(f"{m} -> {t}" for m, ts in imports().items()
                 if m == layer or m.startswith(layer + ".")
                 for t in ts if t.startswith(forbidden))
    assert not bad, bad


def test_nothing_imports_the_cli():
    outside = {m: ts for m, ts in imports().items() if not m.startswith("greensed.cli")}
    assert not [m for m, ts in outside.items() if any(t.startswith("greensed.cli") for t in ts)]


def test_source_files_stay_short():
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
    assert len((PKG / "train" / "loop.py").read_text().splitlines()) <= 150


def test_one_builder_per_record():
    """EpochRecord and Summary are built in one module outside the run log (a new
    field is one edit); greensed's trainer adds its protocol's fields through it."""
    builders: dict[str, set[str]] = {"EpochRecord": set(), "Summary": set()}
    for path in PKG.rglob("*.py"):
        name = module_name(path)
        if name.startswith("greensed.runlog"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in builders:
                builders[node.func.id].add(name)
    assert builders == {"EpochRecord": {"greensed.library.records"},
                        "Summary": {"greensed.library.records"}}
