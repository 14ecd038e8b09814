"""Peak working memory of the image-space solver per pixel: the constant in spl_sdk/footprint.py.

    python benchmarks/footprint.py --sizes 1024 2048 [--no-cpl]

Each size runs in a fresh process (ru_maxrss is a high-water mark) and prints
the peak RSS growth of optimize_image divided by the pixel count.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys


def measure(size: int, cpl: bool, iterations: int) -> float:
    """Bytes per pixel of peak RSS growth while optimizing one ``size`` x ``size`` image."""
    import torch

    from spl_sdk.memory import keep_freed_memory
    from spl_sdk.optimizer import optimize_image
    from spl_sdk.plugins import Plugins

    keep_freed_memory()
    plugins = Plugins(env={})
    terms = [plugins.loss_term("spl")(weight=10000.0)]
    if cpl:
        terms.append(plugins.loss_term("cpl")(weight=1000.0))
    source = torch.rand(1, 3, size, size) * 2 - 1
    start = (source + 0.1 * torch.randn_like(source)).clamp(-1, 1)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    optimize_image(source, start, terms, iterations=iterations)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak - base) * 1024 / (size * size)


def main() -> None:
    """Run each size in its own process and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--no-cpl", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(f"{measure(args.child, not args.no_cpl, args.iterations):.0f}")
        return
    print("| size | terms | solver peak (B/px) |\n|---|---|---|")
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--child", str(size), "--iterations", str(args.iterations)]
        out = subprocess.run(cmd + (["--no-cpl"] if args.no_cpl else []), capture_output=True,
                             text=True, check=True).stdout.strip()
        print(f"| {size}x{size} | {'SPL' if args.no_cpl else 'SPL + CPL'} | {out} |")


if __name__ == "__main__":
    main()
