"""Where the Docker SDK may be imported: only in toolkit/engine/, where its errors are translated into ours."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

TOOLKIT = Path(__file__).resolve().parents[2] / "toolkit"


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import in a module, function bodies included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_only_the_engine_wing_imports_docker():
    outside = []
    for path in sorted(TOOLKIT.rglob("*.py")):
        if (TOOLKIT / "engine") in path.parents:
            continue
        for line, module in _imports(ast.parse(path.read_text(), str(path))):
            if module == "docker" or module.startswith("docker."):
                outside.append(f"{path.relative_to(TOOLKIT.parent)}:{line}: {module}")
    assert not outside, "docker imported outside toolkit/engine/:\n" + "\n".join(outside)


def test_importing_the_cli_loads_no_docker_module():
    code = "import sys, toolkit.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'docker'))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=TOOLKIT.parent, capture_output=True, text=True,
                          check=True)
    assert proc.stdout.strip() == "[]"
