"""``spl eval``: PIE-Bench's metrics for finished batches, and side-by-side comparisons."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from spl_sdk.cli.help import command, epilog, sections
from spl_sdk.cli.options import handle_errors

if TYPE_CHECKING:
    from spl_sdk.metrics.pairs import Pair, RunPairs


def _method_name(run: Path, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", run.stem if run.is_file() else run.resolve().name) or "run"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name


def common_rows(read: dict[str, RunPairs]) -> tuple[dict[str, list[Pair]], str | None]:
    """Each run's pairs narrowed to the ids every run finished, and a note when that drops rows."""
    from spl_sdk.errors import ConfigError

    ids = [{p.id for p in got.pairs} for got in read.values()]
    common = set.intersection(*ids)
    counts = ", ".join(f"{method} {got.describe()}" for method, got in read.items())
    if not common:
        raise ConfigError(f"no row was finished by every run ({counts}); rerun the spl batch commands "
                          f"to finish their rows, then compare again.")
    if all(i == common for i in ids):
        return {m: got.pairs for m, got in read.items()}, None
    note = (f"the runs finished different rows ({counts}); comparing the {len(common)} rows every "
            f"run finished.")
    return {m: [p for p in got.pairs if p.id in common] for m, got in read.items()}, note


@command("eval", epilog=epilog(
    "spl eval runs/spl-on -o reports/spl-on",
    "spl eval runs/spl-on runs/spl-off --compare -o reports/on-vs-off",
    "spl eval pairs.csv -o reports/smoke --networks tiny-random"))
@sections
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--output", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the per-row CSVs, summary.json, summary.md and figures/.")
@click.option("--compare", is_flag=True, help="Score several runs and put them side by side.")
@click.option("--pie-bench", "pie_bench", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PIE-Bench's mapping_file.json for masks and edit types (found by itself when the "
                   "batch ran from it).")
@click.option("--device", default="auto", show_default=True, help="Torch device for the metric networks.")
@click.option("--networks", type=click.Choice(["pretrained", "tiny-random"]), default="pretrained",
              show_default=True, help="pretrained: DINO ViT-B/8, CLIP ViT-L-14 (OpenAI), LPIPS SqueezeNet, "
                                      "downloaded on first use; tiny-random: small random ones, for tests.")
@click.option("--force", is_flag=True, help="Overwrite the report files of an earlier spl eval in OUTDIR.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@handle_errors
def evaluate(runs: tuple[Path, ...], out_dir: Path, compare: bool, pie_bench: Path | None, device: str,
             networks: str, force: bool, quiet: bool) -> None:
    """Score RUNS (spl batch folders, or manifests with an 'edited' column) with PIE-Bench's metrics."""
    from spl_sdk.cli.progress import progress_bar
    from spl_sdk.errors import ConfigError
    from spl_sdk.metrics.evaluate import score_pairs, summarize
    from spl_sdk.metrics.networks import load_networks
    from spl_sdk.metrics.pairs import read_run
    from spl_sdk.metrics.report import check_report, write_report

    if len(runs) > 1 and not compare:
        raise ConfigError("several runs are scored together only with --compare; add it, or give one run.")
    if compare and len(runs) < 2:
        raise ConfigError("--compare needs at least two runs, e.g. spl eval RUN_A RUN_B --compare -o report.")
    for module in ("torchmetrics", "lpips", "matplotlib"):
        try:
            __import__(module)
        except ImportError:
            raise ConfigError(f"spl eval needs {module}; install the metrics with: "
                              f"pip install 'spl-sdk[eval]'") from None
    taken: set[str] = set()
    read = {_method_name(run, taken): read_run(run, pie_bench) for run in runs}  # check all first
    notes = [f"{method}: {got.describe()}" for method, got in read.items()]
    for method, got in read.items():
        if got.failed or got.missing:
            example = next(iter(got.failed.items()), None)
            detail = f"; e.g. {example[0]}: {example[1]}" if example else ""
            click.echo(f"{method}: {got.describe()}{detail}", err=True)
    pairs = {method: got.pairs for method, got in read.items()}
    if compare:
        pairs, note = common_rows(read)
        if note:
            notes.append(note)
            click.echo(note, err=True)
    check_report(list(pairs), out_dir, force)  # never replace a report without --force, nor late
    nets = load_networks(networks, device)
    per_method = {}
    for method, method_pairs in pairs.items():
        with progress_bar(f"eval {method}", unit="pair", enabled=None if not quiet else False) as bar:
            rows = score_pairs(method_pairs, nets, progress=lambda i, n: bar(i, n, None))
        per_method[method] = (rows, summarize(rows))
        failed = [r for r in rows if r.get("error")]
        if failed and not quiet:
            click.echo(f"{method}: {len(failed)} pairs could not be scored, e.g. {failed[0]['id']}: "
                       f"{failed[0]['error']}", err=True)
    written = write_report(per_method, out_dir, compare, force, notes)
    click.echo(written["summary.md"].read_text(encoding="utf-8"))
    if not quiet:
        click.echo(f"wrote {len(written)} files to {out_dir}", err=True)
