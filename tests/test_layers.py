"""The layers of the code, declared once (LAYERS, ORDER: the README's "Architecture" diagram) and enforced
over the AST of every module of emocore/, cli.py and dashboard/.

Rules:
- a module imports only modules of its own layer or of a layer below it (ORDER, from the top down);
  layers on one row of ORDER are independent: neither imports the other;
- every import counts: module level, inside functions (lazy imports), `importlib.import_module` with
  a literal name; only the package facade's `if TYPE_CHECKING:` block is left out (`emocore/__init__.py`
  names the public functions for type checkers and loads them on first use);
- importing a module never loads a higher layer: what it imports at module level, and the packages
  above each of those (Python runs a package's `__init__.py` before any module inside it);
- no import cycles between emocore's modules (lazy imports included);
- nothing in emocore/ imports streamlit, typer, rich or click; the dashboard never imports cli.py;
- every module belongs to a layer (a new module is declared here, and in the README diagram).

A second part checks that every file name a comment or docstring of the code cites (`*.py`, `*.md`) is
a file of this repository, and that the maintainers' design notes outside it are never cited; a third
that the library leaves PyTorch's thread count to its caller (`cli.py index --threads`).
"""

from __future__ import annotations

import ast
import io
import os
import re
import tokenize
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: layer -> the modules in it: an exact module name, or "name.*" for a package and everything under it
#: (the most specific entry wins).
LAYERS: dict[str, tuple[str, ...]] = {
    "cli": ("cli",),
    "dashboard": ("dashboard.*",),
    "devtools": ("emocore.devtools.*",),
    "usecases": ("emocore.usecases", "emocore.queries", "emocore.experiments"),
    "pipeline": ("emocore.indexer", "emocore.engine", "emocore.explain", "emocore.explain.keyframes", "emocore.norms",
                 "emocore.render", "emocore.provision", "emocore.audio.render", "emocore.versions",
                 "emocore.demo_cut"),
    "store": ("emocore.store",),
    "models": ("emocore.models.*", "emocore.features", "emocore.training"),
    "explainers": ("emocore.attribution", "emocore.audio.explain"),
    "labels": ("emocore.labels",),
    "media": ("emocore.video", "emocore.shots", "emocore.preview", "emocore.audio.*"),
    "assets": ("emocore.assets",),
    "foundation": ("emocore", "emocore.errors", "emocore.files", "emocore.params", "emocore.registry",
                   "emocore.trust", "emocore.scoring", "emocore.charts", "emocore.export", "emocore.evaluation"),
}
#: From the top down; the layers of one row are independent of each other.
ORDER: tuple[tuple[str, ...], ...] = (
    ("cli", "dashboard", "devtools"),
    ("usecases",),
    ("pipeline",),
    ("store", "models", "explainers", "labels"),
    ("media",),
    ("assets",),
    ("foundation",),
)
#: Third-party packages the library (emocore/) never imports: they belong to the CLI and the dashboard.
UI_PACKAGES = ("streamlit", "typer", "rich", "click")
#: The package facade, whose `if TYPE_CHECKING:` imports are not counted (it loads its names on first use).
FACADE = "emocore"


@dataclass(frozen=True)
class Import:
    source: str
    """The importing module."""
    target: str
    """The imported module (or a third-party name)."""
    line: int
    lazy: bool
    """Inside a function (or a class body's method): runs only when called."""


def module_name(path: Path) -> str:
    """`emocore/explain/__init__.py` -> `emocore.explain`; `dashboard/views/ad.py` -> `dashboard.views.ad`."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_sources() -> dict[str, str]:
    """Every module of emocore/, cli.py and dashboard/, by module name."""
    files = [ROOT / "cli.py", *sorted((ROOT / "emocore").rglob("*.py")), *sorted((ROOT / "dashboard").rglob("*.py"))]
    return {module_name(f): f.read_text(encoding="utf-8") for f in files if "__pycache__" not in f.parts}


def _is_package(name: str, sources: Mapping[str, str]) -> bool:
    return any(other.startswith(name + ".") for other in sources)


def _resolve(name: str, source: str, sources: Mapping[str, str]) -> str:
    """A project module for an imported name, else the name itself (third party or stdlib)."""
    if source.startswith("dashboard.") and name.split(".")[0] in {m.split(".")[1] for m in sources
                                                                if m.startswith("dashboard.")}:
        name = f"dashboard.{name}"  # streamlit puts dashboard/ on sys.path: pages import `loaders`, `widgets`
    while name and name not in sources and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(source_name: str, text: str, sources: Mapping[str, str]) -> list[Import]:
    """Every import a module's code makes, resolved to project modules where it names one."""
    tree = ast.parse(text)
    package = source_name if _is_package(source_name, sources) or source_name == FACADE else \
        source_name.rsplit(".", 1)[0]
    found: list[Import] = []

    def add(name: str, node: ast.AST, lazy: bool) -> None:
        found.append(Import(source_name, _resolve(name, source_name, sources), node.lineno, lazy))

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.If) and source_name == FACADE and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, lazy)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node, lazy)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                add(full if full in sources else base, node, lazy)
        elif isinstance(node, ast.Call) and _is_import_module(node.func) and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            add(node.args[0].value, node, lazy)
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _is_import_module(func: ast.expr) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or \
        (isinstance(func, ast.Name) and func.id == "import_module")


def layer_of(module: str) -> str | None:
    """The layer a project module belongs to (its most specific entry in LAYERS), None if undeclared."""
    best: tuple[int, str] | None = None
    for layer, patterns in LAYERS.items():
        for pattern in patterns:
            if pattern.endswith(".*"):
                stem = pattern[:-2]
                hit = module == stem or module.startswith(stem + ".")
            else:
                hit = module == pattern
            if hit and (best is None or len(pattern) > best[0]):
                best = (len(pattern), layer)
    return None if best is None else best[1]


def _rank(layer: str) -> int:
    """0 for the top row of ORDER."""
    return next(i for i, row in enumerate(ORDER) if layer in row)


def may_import(source_layer: str, target_layer: str) -> bool:
    if source_layer == target_layer:
        return True
    return _rank(target_layer) > _rank(source_layer)


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def violations(sources: Mapping[str, str]) -> list[str]:
    """Every broken rule in these modules (module name -> source text), one line each."""
    problems: list[str] = []
    graph = {name: imports_of(name, text, sources) for name, text in sources.items()}
    for name in sources:
        if layer_of(name) is None:
            problems.append(f"{name} belongs to no layer: declare it in tests/test_layers.py LAYERS "
                            f"(and the README's Architecture diagram)")
    for name, found in graph.items():
        source_layer = layer_of(name)
        for edge in found:
            top = edge.target.split(".")[0]
            where = f"{name}:{edge.line}" + (" (lazy)" if edge.lazy else "")
            if name.startswith("emocore") and top in UI_PACKAGES:
                problems.append(f"{where} imports {edge.target}: the library never imports a UI package")
            if name.startswith("dashboard") and edge.target == "cli":
                problems.append(f"{where} imports cli: the dashboard never imports the CLI")
            if edge.target not in sources or edge.target == name:
                continue
            target_layer = layer_of(edge.target)
            if source_layer is None or target_layer is None:
                continue
            if not may_import(source_layer, target_layer):
                problems.append(f"{where} imports {edge.target}: layer {source_layer} may not import "
                                f"layer {target_layer}")
    problems += _load_violations(graph, sources)
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in _cycles(graph, sources)]
    return problems


def _load_violations(graph: Mapping[str, list[Import]], sources: Mapping[str, str]) -> list[str]:
    """Modules that importing a module loads (module-level imports and the packages above them), by layer."""
    eager: dict[str, set[str]] = {
        name: {e.target for e in found if not e.lazy and e.target in sources} | set(_ancestors(name)) - {name}
        for name, found in graph.items()
    }
    for name in eager:
        for target in list(eager[name]):
            eager[name].update(a for a in _ancestors(target) if a in sources)
    problems = []
    for name in sorted(sources):
        layer = layer_of(name)
        if layer is None:
            continue
        seen: dict[str, str] = {}
        stack = [(t, name) for t in eager[name]]
        while stack:
            module, via = stack.pop()
            if module in seen or module == name:
                continue
            seen[module] = via
            stack.extend((t, module) for t in eager.get(module, ()))
        for module, via in sorted(seen.items()):
            loaded = layer_of(module)
            if loaded is not None and not may_import(layer, loaded):
                problems.append(f"importing {name} ({layer}) loads {module} ({loaded}), through {via}")
    return problems


def _cycles(graph: Mapping[str, list[Import]], sources: Mapping[str, str]) -> list[list[str]]:
    """Strongly connected groups of two or more emocore modules, each as one cycle through them."""
    edges = {n: sorted({e.target for e in found if e.target in sources and e.target != n
                        and e.target.startswith("emocore")})
             for n, found in graph.items() if n.startswith("emocore")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return [[*g, g[0]] for g in groups]


# --------------------------------------------------------------------------------------------
# the project's own code keeps the rules
# --------------------------------------------------------------------------------------------


def test_the_layers_hold() -> None:
    problems = violations(project_sources())
    assert not problems, "\n".join(problems)


def test_order_names_every_layer_once() -> None:
    in_order = [layer for row in ORDER for layer in row]
    assert sorted(in_order) == sorted(LAYERS) and len(in_order) == len(set(in_order))


def test_the_readme_diagram_is_this_declaration() -> None:
    """The README's Architecture diagram lists the rows of ORDER, top down, with the same layer names."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Architecture\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
    assert match, "README.md has no '## Architecture' section"
    diagram = re.search(r"```text\n(.*?)```", match.group(1), re.S)
    assert diagram, "the Architecture section has no ```text diagram"
    rows = [tuple(re.findall(r"\[(\w+)\]", line)) for line in diagram.group(1).splitlines()]
    assert [row for row in rows if row] == list(ORDER)


def test_importing_the_features_loads_no_pipeline() -> None:
    """`import emocore.features` once loaded the indexer, the explainers and the store (through content_hash)."""
    sources = project_sources()
    graph = {name: imports_of(name, text, sources) for name, text in sources.items()}
    loaded = {e.target for e in graph["emocore.features"] if not e.lazy}
    assert "emocore.files" in loaded
    assert not loaded & {"emocore.indexer", "emocore.store", "emocore.explain"}


# --------------------------------------------------------------------------------------------
# the checker catches what it should (fed small fake modules)
# --------------------------------------------------------------------------------------------


def _with(**fake: str) -> dict[str, str]:
    sources = project_sources()
    sources.update({name.replace("__", "."): text for name, text in fake.items()})
    return sources


def test_a_lazy_import_of_the_store_from_media_is_caught() -> None:
    sources = _with(emocore__video="def read():\n    from emocore.store import Store\n    return Store\n")
    problems = violations(sources)
    assert any(p.startswith("emocore.video:2 (lazy) imports emocore.store: layer media may not import layer store")
               for p in problems), problems


def test_the_store_importing_a_model_is_caught() -> None:
    text = project_sources()["emocore.store"] + "\nfrom emocore.models.fer import FerModel\n"
    problems = violations(_with(emocore__store=text))
    assert any("imports emocore.models.fer: layer store may not import layer models" in p for p in problems)


def test_models_reaching_the_pipeline_through_importlib_is_caught() -> None:
    text = 'import importlib\n\ndef f():\n    return importlib.import_module("emocore.indexer")\n'
    problems = violations(_with(emocore__models__fake=text))
    assert any("emocore.models.fake:4 (lazy) imports emocore.indexer: layer models may not import layer pipeline"
               in p for p in problems), problems


def test_ui_packages_in_the_library_and_cli_in_the_dashboard_are_caught() -> None:
    problems = violations(_with(emocore__scoring="import streamlit as st\n",
                                dashboard__views__fake="def render():\n    import cli\n"))
    assert any("emocore.scoring:1 imports streamlit" in p for p in problems), problems
    assert any("dashboard.views.fake:2 (lazy) imports cli" in p for p in problems), problems


def test_a_cycle_and_an_undeclared_module_are_caught() -> None:
    problems = violations(_with(emocore__newthing="from emocore.errors import EmocoreError\n",
                                emocore__errors="def f():\n    from emocore import newthing\n"))
    assert any(p.startswith("emocore.newthing belongs to no layer") for p in problems), problems
    assert "import cycle: emocore.errors -> emocore.newthing -> emocore.errors" in problems


def test_a_package_init_loaded_from_above_is_caught() -> None:
    """A low module inside a package whose __init__ is higher up loads that __init__ when imported."""
    sources = _with(emocore__video="from emocore.explain import keyframes\n")
    problems = violations(sources)
    assert any(p.startswith("importing emocore.video (media) loads emocore.explain (pipeline)") for p in problems)


def test_relative_imports_resolve() -> None:
    sources = _with(emocore__audio__fake="from ..store import Store\nfrom . import decode\n")
    found = imports_of("emocore.audio.fake", sources["emocore.audio.fake"], sources)
    assert [e.target for e in found] == ["emocore.store", "emocore.audio.decode"]


# --------------------------------------------------------------------------------------------
# file names cited in the code
# --------------------------------------------------------------------------------------------

#: The maintainers' design notes: not part of the repository, so never cited by its code.
OUTSIDE_NOTES = ("AUDIO.md", "DASHBOARD.md", "MODELS.md", "PERFORMANCE.md", "PITT.md", "PRODUCT.md", "STYLE.md")
#: A file of another project, named on purpose: "YAMNet's features.py", "open_clip's transform.py".
FOREIGN = re.compile(r"(YAMNet|TensorFlow|Keras|torchvision|open_clip|PyAV|Streamlit|lime|shap)'s\s+`?$")
_FILE_NAME = re.compile(r"(?<![\w.-])((?:[\w-]+/)*[\w-]+\.(?:py|md))\b")
_SKIP_DIRS = {".git", "__pycache__", "node_modules", ".venv", "venv", "cache", ".pytest_cache", "build", "dist"}


def repository_files() -> list[str]:
    """Every file of the working tree (build outputs, caches and virtual environments left out), root-relative."""
    files = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
        base = Path(folder).relative_to(ROOT)
        files += [(base / name).as_posix() for name in names]
    return files


def _texts(path: Path) -> Iterable[tuple[int, str]]:
    """(line, text) of every comment and docstring (any string standing as a statement) of a Python file."""
    text = path.read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            yield node.lineno, node.value.value
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string


def cited_file_problems(paths: Iterable[Path], files: list[str]) -> list[str]:
    names = set(files)
    problems = []
    for path in paths:
        rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
        for line, text in _texts(path):
            for note in OUTSIDE_NOTES:
                if re.search(rf"\b{re.escape(note)}", text):
                    problems.append(f"{rel}:{line} cites {note}, which is not in the repository")
            for match in _FILE_NAME.finditer(text):
                name = match.group(1)
                if name.rsplit("/", 1)[-1] in OUTSIDE_NOTES or FOREIGN.search(text[: match.start()]):
                    continue
                here = (path.parent / name).resolve()
                if name in names or here.is_file() or any(f.endswith("/" + name) for f in names):
                    continue
                problems.append(f"{rel}:{line} names {name}, which is not a file of the repository")
    return problems


def _python_files() -> list[Path]:
    paths = [ROOT / "cli.py"]
    for folder in ("emocore", "dashboard", "tests", "benchmarks"):
        paths += [p for p in sorted((ROOT / folder).rglob("*.py")) if "__pycache__" not in p.parts]
    return paths


def test_code_cites_only_files_of_the_repository() -> None:
    problems = cited_file_problems(_python_files(), repository_files())
    assert not problems, "\n".join(problems)


def test_the_citation_check_catches_a_missing_file_and_an_outside_note(tmp_path: Path) -> None:
    fake = tmp_path / "fake.py"
    fake.write_text('"""See PERFORMANCE.md and emocore/nowhere.py; emocore/files.py is fine."""\n# and docs/gone.md\n')
    assert cited_file_problems([fake], repository_files()) == [
        "fake.py:1 cites PERFORMANCE.md, which is not in the repository",
        "fake.py:1 names emocore/nowhere.py, which is not a file of the repository",
        "fake.py:2 names docs/gone.md, which is not a file of the repository",
    ]


# --------------------------------------------------------------------------------------------
# PyTorch's threads are the caller's choice
# --------------------------------------------------------------------------------------------


def test_the_library_never_sets_torch_threads() -> None:
    calls = []
    for name, text in project_sources().items():
        if name.startswith("emocore"):
            calls += [f"{name}:{node.lineno}" for node in ast.walk(ast.parse(text))
                      if isinstance(node, ast.Attribute) and node.attr in ("set_num_threads", "set_num_interop_threads")]
    assert calls == []


def test_cli_index_threads_sets_torch_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`index --threads N` sets PyTorch's threads before indexing (the library no longer does)."""
    import torch
    from typer.testing import CliRunner

    import cli
    from emocore import indexer

    seen: list[int] = []

    def index_folder(folder: Path, cache: Path, **options: object) -> indexer.IndexReport:
        seen.append(torch.get_num_threads())
        return indexer.IndexReport((), 0.0, Path(cache))

    monkeypatch.setattr(indexer, "index_folder", index_folder)
    before = torch.get_num_threads()
    try:
        for threads in (2, 1):
            result = CliRunner().invoke(cli.app, ["index", str(tmp_path), "--cache", str(tmp_path / "cache"),
                                                  "--threads", str(threads), "--no-explain"])
            assert result.exit_code == 0, result.output
    finally:
        torch.set_num_threads(before)
    assert seen == [2, 1]
