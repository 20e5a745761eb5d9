"""The load generator reaches Storefabric over HTTP only: no module of loadtests/ imports project code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

LOADTESTS = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = {"app", "workers", "pricing", "analytics", "backups", "notifications", "dashboard", "bench"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_loadtests_module_imports_project_code():
    modules = list(LOADTESTS.glob("*.py"))

    offenders = {path.name: imported_roots(path) & PROJECT_PACKAGES for path in modules}

    assert len(modules) >= 10
    assert {name: roots for name, roots in offenders.items() if roots} == {}
    assert all("django" not in imported_roots(path) for path in modules)


def test_the_verdict_side_never_imports_locust():
    """Importing locust monkey-patches a process with gevent; pytest and the CLI must stay unpatched."""
    probe = "import sys, loadtests.run, loadtests.shapes, loadtests.checks; print('locust' in sys.modules)"

    result = subprocess.run([sys.executable, "-c", probe], cwd=LOADTESTS.parent, capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
