"""The project is an installable package (pyproject.toml): the `emocore` console script is `python cli.py`,
the wheel holds the code and never the weights, the pins are exact, and nothing edits sys.path."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
INSTALL = f"run `pip install -e .` in {ROOT}"


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _console_script() -> Path:
    script = Path(sysconfig.get_path("scripts")) / "emocore"
    if not script.is_file():
        pytest.fail(f"no `emocore` console script in {script.parent}: {INSTALL}")
    return script


def _lines(text: str, program: str) -> list[str]:
    """The output's lines, right-stripped, with the program's name in the usage line made neutral."""
    return [line.replace(f"Usage: {program} ", "Usage: PROGRAM ").rstrip() for line in text.splitlines()]


def _requirements() -> list[str]:
    lines = (line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_console_script_is_python_cli_py(tmp_path: Path) -> None:
    """`emocore`, run from another folder, shows the same help and fails the same way as `python cli.py`."""
    script = _console_script()
    documented = _run([sys.executable, "cli.py", "--help"], ROOT)
    installed = _run([str(script), "--help"], tmp_path)
    assert documented.returncode == 0, documented.stderr
    assert installed.returncode == 0, installed.stderr
    assert "index" in documented.stdout and "explain" in documented.stdout
    assert _lines(installed.stdout, "emocore") == _lines(documented.stdout, "cli.py")

    missing = str(tmp_path / "no-cache")
    documented = _run([sys.executable, str(ROOT / "cli.py"), "ls", "--cache", missing], tmp_path)
    installed = _run([str(script), "ls", "--cache", missing], tmp_path)
    assert documented.returncode == installed.returncode == 1
    assert installed.stderr == documented.stderr and "no cache at" in installed.stderr


def test_every_pin_is_exact_and_the_package_installs_them() -> None:
    requirements = _requirements()
    loose = [r for r in requirements if not re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[A-Za-z0-9_,\-]+\])?==[A-Za-z0-9_.+!\-]+", r)]
    assert not loose, f"requirements.txt pins must be exact (name==version): {loose}"
    assert "torch==2.14.1" in requirements  # a range admitting a newer torch downloads several GB
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "dependencies" in project["project"]["dynamic"] and "dependencies" not in project["project"]
    assert project["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
    try:
        installed = importlib.metadata.requires("emocore") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"emocore is not installed: {INSTALL}")
    assert sorted(installed) == sorted(requirements), f"the installed emocore has other pins: {INSTALL} again"


def test_both_readme_commands_install_the_package() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    commands = [line for line in blocks[0].splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    for command in commands:
        assert "pip install -r requirements.txt && pip install -e . && " in command, command


@pytest.mark.slow
def test_the_wheel_holds_every_package_and_cli_but_never_the_weights(tmp_path: Path) -> None:
    """Built from a copy of the project (with stand-in weight files), without network."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements.txt", "cli.py"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "emocore", project / "emocore",
                    ignore=shutil.ignore_patterns("__pycache__", "weights", "*.egg-info"))
    (project / "emocore" / "weights").mkdir()
    for name in ("manifest.json", "pnet.pt"):
        (project / "emocore" / "weights" / name).write_text("stand-in")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", ".",
                           "-w", str(tmp_path / "dist")], cwd=project, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("emocore-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.parent.relative_to(project)) for p in (project / "emocore").rglob("__init__.py")}
    assert {"emocore", "emocore/models", "emocore/explain", "emocore/devtools"} <= packages
    assert {f"{p}/__init__.py" for p in packages} | {"cli.py", "emocore/devtools/media.py"} <= names
    assert not [n for n in names if "weights" in n.split("/")[:-1]]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "emocore = cli:app" in zipfile.ZipFile(wheel).read(entry_points).decode()


def _sys_path_edits(tree: ast.AST) -> list[int]:
    """Lines that change sys.path: assignments to it or its items, its mutating methods, `from sys import path`,
    site.addsitedir."""
    def is_sys_path(node: ast.AST) -> bool:
        if isinstance(node, ast.Subscript):
            node = node.value
        return (isinstance(node, ast.Attribute) and node.attr == "path"
                and isinstance(node.value, ast.Name) and node.value.id == "sys")

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        else:
            targets = []
        if any(is_sys_path(t) for t in targets):
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                (node.func.attr in {"insert", "append", "extend", "remove", "pop", "clear"}
                 and is_sys_path(node.func.value))
                or (node.func.attr == "addsitedir" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "site")):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" and any(a.name == "path" for a in node.names):
            lines.append(node.lineno)
    return sorted(lines)


def test_nothing_edits_sys_path() -> None:
    """emocore is importable because the project is installed; test helpers come from emocore.devtools."""
    files = [ROOT / "cli.py"] + [p for folder in ("emocore", "dashboard", "benchmarks", "tests")
                                 for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(files) > 30
    edits = [f"{f.relative_to(ROOT)}:{line}" for f in files for line in _sys_path_edits(ast.parse(f.read_text()))]
    assert not edits, f"sys.path edited at {edits}"
    # the check itself finds what it must
    assert _sys_path_edits(ast.parse("import sys, site\nsys.path.insert(0, 'x')\nsys.path[:0] = ['y']\n"
                                     "sys.path = []\nsite.addsitedir('z')\nfrom sys import path\n")) == [2, 3, 4, 5, 6]
    assert not (ROOT / "tests" / "media.py").exists()
