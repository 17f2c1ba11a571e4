"""The direction of imports (docs/architecture.md, "Where each concept lives").

schemas <- models <- components <- pipeline; serving/ imports schemas/ only; nothing
imports bench/. A component never imports another component's executor. Every import
counts, also one inside a function.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("schemas", "models", "components", "pipeline", "serving", "bench")
# Project packages each package may import (besides itself).
ALLOWED = {
    "schemas": set(),
    "models": {"schemas"},
    "components": {"schemas", "models"},
    "pipeline": {"schemas", "models", "components"},
    "serving": {"schemas"},
    "bench": set(PACKAGES),
}


def imports(path: pathlib.Path) -> list[tuple[int, list[str]]]:
    """(line, dotted names) of every import statement in a file; `from a import b` names
    a and a.b (b may be a module)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, [alias.name]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found.append((node.lineno, [node.module, *names]))
    return found


def _executor(names: list[str]) -> str | None:
    """components.<name>.executor if the statement imports a component's executor."""
    for name in names:
        parts = name.split(".")
        if parts[0] == "components" and len(parts) >= 3 and parts[2] == "executor":
            return ".".join(parts[:3])
    return None


def violations(root: pathlib.Path) -> list[str]:
    """Every import against the layering rules under root, as 'file:line: reason'."""
    out = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            own = rel.parts[1] if package == "components" and len(rel.parts) > 2 else None
            for line, names in imports(path):
                top = names[0].split(".")[0]
                if top in PACKAGES and top != package and top not in ALLOWED[package]:
                    out.append(f"{rel}:{line}: {package}/ imports {names[0]}")
                executor = _executor(names)
                if executor and package == "components" and executor.split(".")[1] != own:
                    out.append(f"{rel}:{line}: imports another component's executor {executor}")
    return sorted(out)


def test_the_repository_follows_the_import_direction():
    assert violations(ROOT) == []


def _tree(tmp_path, files: dict) -> pathlib.Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    "name, text, reason",
    [
        ("models/a.py", "from components.x import y\n", "models/ imports components.x"),
        ("models/b.py", "def f():\n    import components.x\n", "models/ imports components.x"),
        ("schemas/c.py", "from models import m\n", "schemas/ imports models"),
        ("serving/d.py", "from models.serving import export\n", "serving/ imports models.serving"),
        ("pipeline/e.py", "import bench.index\n", "pipeline/ imports bench.index"),
        (
            "components/a/executor.py",
            "from components.b.executor import load\n",
            "imports another component's executor components.b.executor",
        ),
        (
            "components/a/x.py",
            "from components.b import executor as E\n",
            "imports another component's executor components.b.executor",
        ),
    ],
)
def test_each_kind_of_upward_import_is_reported(tmp_path, name, text, reason):
    root = _tree(tmp_path, {name: text})
    found = violations(root)
    assert len(found) == 1 and found[0].startswith(name) and found[0].endswith(reason), found


def test_allowed_imports_are_not_reported(tmp_path):
    root = _tree(
        tmp_path,
        {
            "models/a.py": "from schemas import features\nimport numpy\n",
            "components/a/component.py": "from components.a import executor\n",
            "components/a/executor.py": "from models.search import index\n",
            "bench/x.py": "from components.b.executor import load\n",
            "pipeline/p.py": "from components.b import executor\n",
            "serving/s.py": "from schemas import serving\n",
        },
    )
    assert violations(root) == []
