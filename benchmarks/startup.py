"""Start-up cost of ``spl --help`` and ``spl plugins``: wall and CPU seconds, and heavy imports.

    python benchmarks/startup.py                # 5 runs of each command, medians
    python benchmarks/startup.py --runs 10

Each run is a fresh interpreter (``python -m spl_sdk.cli ...``), timed from the parent with
``resource.getrusage(RUSAGE_CHILDREN)`` for CPU seconds. On a loaded machine compare CPU
seconds: wall time grows with the load, CPU time much less.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

COMMANDS = {"spl --version": ["--version"], "spl --help": ["--help"], "spl plugins": ["plugins"]}
HEAVY = ("torch", "numpy", "diffusers", "transformers", "openai", "streamlit", "open_clip")
PROBE = ("import sys\nfrom spl_sdk.cli import main\n"
         "try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
         "print(__import__('json').dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))),"
         " file=sys.stderr)\n")


def run_once(args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh ``python -m spl_sdk.cli ARGS``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "spl_sdk.cli", *args], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heavy_imports(args: list[str]) -> list[str]:
    """Top-level heavy packages a command leaves in ``sys.modules``."""
    code = PROBE.format(args=args, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(done.stderr.strip().splitlines()[-1])


def main() -> None:
    """Print one line per command: median wall and CPU seconds over the runs, heavy imports."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    print("| command | median wall (s) | median CPU (s) | heavy modules imported |")
    print("|---|---|---|---|")
    for label, args in COMMANDS.items():
        times = [run_once(args) for _ in range(opts.runs)]
        wall = statistics.median(t[0] for t in times)
        cpu = statistics.median(t[1] for t in times)
        print(f"| `{label}` | {wall:.2f} | {cpu:.2f} | {', '.join(heavy_imports(args)) or 'none'} |")


if __name__ == "__main__":
    main()
