"""Lint: every Celery task is declared with ``reliable_task`` and an explicit name,
queue, soft and hard time limit. Run by ``./sf test`` before pytest.

Reads the source (AST), so a task module that is never imported is checked too.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP_PARTS = {".venv", "var", "node_modules", "migrations", "tests", "loadtests", "bench"}
REQUIRED = ("name", "queue", "soft_time_limit", "time_limit")
BARE_DECORATORS = {"task", "shared_task"}
DECLARING_MODULE = ROOT / "workers" / "reliable.py"


def _python_files() -> Iterator[Path]:
    for path in ROOT.rglob("*.py"):
        if not SKIP_PARTS.intersection(path.relative_to(ROOT).parts):
            yield path


def _decorator_name(node: ast.expr) -> str | None:
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Attribute):
        return target.attr
    if isinstance(target, ast.Name):
        return target.id
    return None


def problems_in(path: Path) -> list[str]:
    found = []
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for decorator in node.decorator_list:
            name = _decorator_name(decorator)
            where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
            if name in BARE_DECORATORS and path != DECLARING_MODULE:
                found.append(f"{where}: declare tasks with workers.reliable.reliable_task, not @{name}")
            if name == "reliable_task":
                given = {kw.arg for kw in decorator.keywords} if isinstance(decorator, ast.Call) else set()
                missing = [key for key in REQUIRED if key not in given]
                if missing:
                    found.append(f"{where}: reliable_task is missing {', '.join(missing)}")
    return found


def main() -> int:
    problems = [problem for path in _python_files() for problem in problems_in(path)]
    for problem in problems:
        sys.stderr.write(problem + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
