"""The API fuzz test at length: 200 examples per operation by default (CI runs 25).

    python bench/api_fuzz_long.py [--examples 200] [-- pytest options]

Runs ``app/tests/test_api_fuzz.py`` (every operation of docs/openapi.yaml, with a secret key,
a publishable key and a staff session, every check on) with ``API_FUZZ_EXAMPLES`` set, on the
test settings: PostgreSQL from ``DATABASE_URL`` (pytest-django creates ``test_<name>``) and
the Redis of ``SF_TEST_REDIS``. Generation stays derandomized, so a run is repeatable; more
examples reach further into each operation's inputs. Exits with pytest's status; ~8 times
the CI run's time (~3 minutes on an idle 2-core machine at 200).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ_TEST = "app/tests/test_api_fuzz.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="Examples per operation (default 200).")
    parser.add_argument("pytest_args", nargs="*", help="Passed to pytest after --.")
    options = parser.parse_args(argv)
    env = {**os.environ, "API_FUZZ_EXAMPLES": str(options.examples)}
    env.setdefault("DJANGO_SETTINGS_MODULE", "app.settings_test")
    command = [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q", FUZZ_TEST]
    return subprocess.run([*command, *options.pytest_args], cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
