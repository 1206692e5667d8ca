"""Run every benchmark script in this folder in turn; ``make bench`` calls it.

Each script runs in its own process with the same Python. A script that
fails does not stop the others, and the exit status is 1 if any failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main() -> int:
    scripts = sorted(
        path
        for path in HERE.glob("*.py")
        if path.name not in {"run_all.py", "__init__.py"}
        and not path.name.startswith("_")
    )
    failed = []
    for script in scripts:
        print(f"== {script.relative_to(ROOT)}", flush=True)
        started = time.monotonic()
        status = subprocess.call([sys.executable, str(script)], cwd=ROOT)
        elapsed = time.monotonic() - started
        print(f"== {script.name} exited with status {status} after {elapsed:.0f} s\n")
        if status != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
