"""The package's shape: no import cycles among sdgen's modules (imports inside functions count too), no import
that runs up the layers of docs/development.md, and nothing inside sdgen imports the top-level facade."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

SRC = ROOT / "src"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sdgen_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / "sdgen").rglob("*.py"))}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every sdgen module ``path`` imports anywhere (top level, functions, TYPE_CHECKING blocks)."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from a.b import c`: the submodule a.b.c if there is one, else a.b
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {name for name in found if name in modules and name != this}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles_among_sdgen_modules():
    modules = sdgen_modules()
    graph = {name: imports_of(path, modules) for name, path in modules.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# The layers, bottom first (docs/development.md): a module may import its own layer and those below, never above.
LAYERS = [
    ("base", {"errors", "hardware", "debug", "progress", "text", "formats", "timing"}),
    ("task", {"spec", "plan", "extract", "prompts", "realdata", "specdoc"}),
    ("models", {"models"}),
    ("store", {"store"}),
    ("engines", {"engines"}),
    ("quality", {"quality"}),
    ("hosting", {"hosting"}),
    ("run", {"run"}),
    ("entry points", {"tuning", "bench", "recipe", "testing", "cli", ""}),
]


def layer_of(module: str) -> int:
    area = module.split(".")[1] if "." in module else ""
    found = [i for i, (_, areas) in enumerate(LAYERS) if area in areas]
    assert found, f"{module} is in no layer of tests/test_layout.py LAYERS (and docs/development.md): place it"
    return found[0]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} ({LAYERS[layer_of(m)][0]}) -> {d} ({LAYERS[layer_of(d)][0]})"
                  for m, deps in graph.items() for d in deps if layer_of(d) > layer_of(m))  # fmt: skip


def test_no_import_runs_up_the_layers():
    modules = sdgen_modules()
    graph = {name: imports_of(path, modules) for name, path in modules.items()}
    assert upward_imports(graph) == []


def test_the_layer_check_finds_an_upward_import():
    assert upward_imports({"sdgen.spec": {"sdgen.quality.index"}, "sdgen.quality.index": {"sdgen.text"}}) == [
        "sdgen.spec (task) -> sdgen.quality.index (quality)"
    ]


def test_the_layers_are_documented():
    from conftest import ROOT

    text = (ROOT / "docs" / "development.md").read_text()
    for name, _ in LAYERS:
        assert f"**{name}**" in text, name


def test_no_module_imports_the_facade():
    """`sdgen/__init__.py` re-exports the API lazily; a module importing it would load the whole pipeline."""
    modules = sdgen_modules()
    users = [name for name, path in modules.items() if name != "sdgen" and "sdgen" in imports_of(path, modules)]
    assert users == []


def test_the_checker_finds_a_planted_cycle(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    pkg = tmp_path / "src" / "sdgen"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("def f():\n    from sdgen import y\n")  # inside a function: still an import
    (pkg / "y.py").write_text("from . import x\n")
    modules = {"sdgen.x": pkg / "x.py", "sdgen.y": pkg / "y.py"}
    global SRC
    saved, SRC = SRC, tmp_path / "src"
    try:
        graph = {name: imports_of(path, modules) for name, path in modules.items()}
    finally:
        SRC = saved
    assert find_cycle(graph) == ["sdgen.x", "sdgen.y", "sdgen.x"]
