"""Rows per minute of ``spl batch`` for tiny-random-sd15: the in-process engine vs Ray Data with 2 workers.

    python benchmarks/batch.py                      # 16 rows, 128 px, 4 steps, both engines
    python benchmarks/batch.py --rows 32 --workers 2 4

Each case runs in its own process (a fresh Ray for the Ray cases). Two rates are
reported: end to end (model loading and Ray start-up included, what a user waits
for) and steady (rows after the first one, per minute since the first one finished;
Ray hands finished rows to the driver in bursts, which flatters its steady rate),
plus the mean seconds one row takes inside a worker.
Every process uses one torch thread by default (``--threads`` for the in-process
engine): on a shared machine more threads than free cores slow torch down badly,
and one thread per worker is what Ray gives each actor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "apps" / "examples" / "old_man.png"
STYLES = ("painting", "drawing", "sketch", "photo", "statue", "poster", "mosaic", "watercolor")


def write_manifest(folder: Path, rows: int, size: int) -> Path:
    """``rows`` edits of the example photo at ``size`` px, each with its own prompt and seed."""
    from PIL import Image

    photo = folder / "photo.png"
    Image.open(EXAMPLE).convert("RGB").resize((size, size)).save(photo)
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({
        "id": f"row{i:03d}", "image": photo.name, "source_prompt": "a photo of an old man",
        "target_prompt": f"a {STYLES[i % len(STYLES)]} of an old man", "seed": i}) + "\n"
        for i in range(rows)), encoding="utf-8")
    return manifest


def run_case(args: argparse.Namespace) -> dict:
    """One engine on a fresh manifest in this process; returns its rates."""
    import torch

    from spl_sdk.config import EditConfig
    from spl_sdk.jobs.runner import run_batch

    folder = Path(tempfile.mkdtemp(prefix="spl-batch-bench-"))
    manifest = write_manifest(folder, args.rows, args.size)
    base = EditConfig(backbone="tiny-random-sd15", device="cpu", working_size=args.size, steps=args.steps,
                      iterations=args.iters)
    finished: list[float] = []
    began = time.perf_counter()
    if args.case == "local":
        torch.set_num_threads(args.threads)
        summary = run_batch(manifest, folder / "out", base, on_record=lambda r: finished.append(time.perf_counter()))
    else:
        import ray

        workers = args.workers[0]
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        summary = run_batch(manifest, folder / "out", base, engine="ray",
                            on_record=lambda r: finished.append(time.perf_counter()),
                            ray_options={"concurrency": workers, "num_cpus": 1})
        ray.shutdown()
    wall = time.perf_counter() - began
    steady = (len(finished) - 1) * 60 / (finished[-1] - finished[0]) if len(finished) > 1 else None
    return {"case": args.case if args.case == "local" else f"ray x{args.workers[0]}", "rows": args.rows,
            "ok": summary.ok, "wall_s": round(wall, 1), "rows_per_min": round(args.rows * 60 / wall, 1),
            "steady_rows_per_min": round(steady, 1) if steady else None,
            "row_s": round(sum(r["seconds"] for r in summary.records) / max(1, len(summary.records)), 2)}


def main() -> None:
    """Run each case in a child process and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the in-process engine (one per Ray worker either way)")
    parser.add_argument("--workers", type=int, nargs="+", default=[2], help="Ray actor counts to try")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args)))
        return
    common = ["--rows", str(args.rows), "--size", str(args.size), "--steps", str(args.steps),
              "--iters", str(args.iters), "--threads", str(args.threads)]
    cases = [["--case", "local"]] + [["--case", "ray", "--workers", str(w)] for w in args.workers]
    print(f"tiny-random-sd15, {args.rows} rows of {args.size} px, {args.steps} steps, {args.iters} iterations, "
          f"{os.cpu_count()} CPUs\n")
    print("| engine | rows ok | wall (s) | rows/min end to end | rows/min steady | s per row in a worker |\n"
          "|---|---|---|---|---|---|")
    for case in cases:
        out = subprocess.run([sys.executable, __file__, *common, *case], capture_output=True, text=True,
                             env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
        if out.returncode:
            sys.exit(f"case {' '.join(case)} failed:\n{out.stderr[-3000:]}")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {row['case']} | {row['ok']}/{row['rows']} | {row['wall_s']} | {row['rows_per_min']} | "
              f"{row['steady_rows_per_min']} | {row['row_s']} |", flush=True)


if __name__ == "__main__":
    main()
