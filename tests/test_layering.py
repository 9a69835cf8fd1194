"""The package's layering: each wing imports only wings below it, no import cycles, the library never imports the CLI.

Every `import`/`from ... import` of a ragkit module counts, at module level or inside a function, except those
under `if TYPE_CHECKING:` (never run). The one permitted upward import is `Index.search` delegating to the
search wing, imported inside the method (ALLOWED_UPWARD), so `import ragkit.index` never loads the search wing.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ragkit"

# Lowest first; a module may import its own wing and any wing of a lower level. The root package (`ragkit`,
# for __version__) sits with the records and errors on the ground floor.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"ragkit", "ragkit.datatypes", "ragkit.errors"}),
    frozenset({"ragkit.readers"}),
    frozenset({"ragkit.chunking"}),
    frozenset({"ragkit.embed"}),
    frozenset({"ragkit.storage"}),
    frozenset({"ragkit.index"}),
    frozenset({"ragkit.search"}),
    frozenset({"ragkit.answer"}),
    frozenset({"ragkit.evaluation"}),
    frozenset({"ragkit.serve"}),
    frozenset({"ragkit.cli"}),
)
FRONT_ENDS = frozenset({"ragkit.cli", "ragkit.serve"})
ALLOWED_UPWARD = {("ragkit.index.core", "ragkit.search.hybrid")}


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def wing(module: str) -> str:
    """`ragkit.embed.onnx_model` -> `ragkit.embed`; `ragkit.chunking` -> `ragkit.chunking`; `ragkit` -> `ragkit`."""
    return ".".join(module.split(".")[:2])


def level(module: str) -> int:
    w = wing(module)
    for n, names in enumerate(LAYERS):
        if w in names:
            return n
    raise AssertionError(f"{module}: its wing {w} is not in LAYERS; add it at its place in the data flow")


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")
        anchor = parts if is_package else parts[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([node.module] if node.module else []))
    if node.module is None:  # `from . import x`: x may be a submodule
        return [f"{base}.{a.name}" for a in node.names]
    return [base]


def imports(path: Path, package: Path) -> list[tuple[str, int]]:
    """(imported ragkit module, line) for every import that can run."""
    module = module_name(path, package)
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            for child in node.orelse:  # type: ignore[attr-defined]
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.extend((name, node.lineno) for name in _resolve(module, is_package, node))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return [(name, line) for name, line in found if name == "ragkit" or name.startswith("ragkit.")]


def existing(name: str, modules: set[str]) -> str:
    """The module an import names: `ragkit.search.with_context` (a name from a package) -> `ragkit.search`."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def graph(package: Path) -> dict[str, dict[str, int]]:
    files = {module_name(p, package): p for p in sorted(package.rglob("*.py"))}
    modules = set(files)
    return {m: {existing(name, modules): line for name, line in imports(p, package)} for m, p in files.items()}


def violations(package: Path) -> list[str]:
    problems = []
    edges = graph(package)
    for source, targets in edges.items():
        for target, line in targets.items():
            where = f"{source} (line {line}) imports {target}"
            if wing(source) in ("ragkit.datatypes", "ragkit.errors") and target != source:
                problems.append(f"{where}: the ground floor imports nothing of ragkit")
            elif source == "ragkit" and level(target) > 0:
                problems.append(f"{where}: `import ragkit` must stay light (load wings lazily)")
            elif wing(target) in FRONT_ENDS and wing(source) not in FRONT_ENDS:
                problems.append(f"{where}: the library never imports a front end")
            elif level(target) > level(source) and (source, target) not in ALLOWED_UPWARD:
                problems.append(f"{where}: an upward import ({wing(source)} is below {wing(target)})")
    problems.extend(f"import cycle: {' -> '.join(c)}" for c in cycles(edges))
    return problems


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            # A package importing its own submodules (re-exports) is not a cycle of behaviour.
            if w.startswith(v + "."):
                continue
            if w not in index:
                strong(w)
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
            strong(v)
    return found


def test_the_package_is_layered_by_pipeline_stage() -> None:
    assert violations(PACKAGE) == []


def test_every_module_belongs_to_a_wing() -> None:
    for path in PACKAGE.rglob("*.py"):
        level(module_name(path, PACKAGE))


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "ragkit"
    for path in PACKAGE.rglob("*.py"):
        dest = target / path.relative_to(PACKAGE)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return target


@pytest.mark.parametrize(
    ("file", "line", "expected"),
    [
        ("storage/local.py", "from ..search import fuse", "an upward import (ragkit.storage is below ragkit.search)"),
        ("readers/corpus.py", "def late():\n    from ..index import Index\n", "an upward import (ragkit.readers is below ragkit.index)"),
        ("answer/base.py", "from ..cli.render import safe", "the library never imports a front end"),
        ("datatypes.py", "from .errors import RagkitError", "the ground floor imports nothing of ragkit"),
        ("__init__.py", "from .index import Index", "`import ragkit` must stay light"),
        ("embed/base.py", "from . import registry", "import cycle: ragkit.embed.base ->"),
    ],
)
def test_an_injected_violation_is_caught(tmp_path: Path, file: str, line: str, expected: str) -> None:
    package = _copy(tmp_path)
    path = package / file
    path.write_text(path.read_text(encoding="utf-8") + "\n" + line + "\n", encoding="utf-8")
    found = violations(package)
    assert any(expected in problem for problem in found), found


def test_type_checking_imports_do_not_count(tmp_path: Path) -> None:
    package = _copy(tmp_path)
    path = package / "storage" / "store.py"
    path.write_text(path.read_text(encoding="utf-8") + "\nif TYPE_CHECKING:\n    from ..search import fuse\n", encoding="utf-8")
    assert violations(package) == []


def test_importing_a_wing_loads_no_wing_above_it() -> None:
    """The static rules hold at run time too: importing each wing loads no module of a higher wing."""
    code = (
        "import sys, importlib\n"
        "for name in sys.argv[1:]:\n"
        "    before = set(sys.modules)\n"
        "    importlib.import_module(name)\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('ragkit'))))\n"
    )
    for n, names in enumerate(LAYERS):
        for name in sorted(names):
            out = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True, check=True).stdout.split()
            above = [m for m in out if level(m) > n]
            assert above == [], f"import {name} loaded {above}"
