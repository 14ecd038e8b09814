"""``spl batch``: many edits from a manifest, resumable, in-process or on Ray Data."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from spl_sdk.aliases import ALIASES, OldFlags
from spl_sdk.cli.help import command, epilog, sections
from spl_sdk.cli.options import config_options, handle_errors, option_flag
from spl_sdk.config import EditConfig
from spl_sdk.text import printable

if TYPE_CHECKING:
    from spl_sdk.jobs.manifest import Row
    from spl_sdk.jobs.runner import BatchSummary

BATCH_FIELDS = [name for name in EditConfig.model_fields if name not in ("mask_file", "options")]


@command("batch", epilog=epilog(
    "spl batch edits.jsonl -o runs/spl-on --backbone lcm-dreamshaper-v7",
    "spl batch edits.jsonl -o runs/spl-off --structure-loss none --engine ray --concurrency 4 "
    "--num-gpus-per-worker 1",
    "spl batch PIE-Bench_v1/mapping_file.json -o runs/pie --device cuda"))
@sections
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the images (OUTDIR/images/ID.png) and the results table.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this process, backbone loaded once; ray: Ray Data actor pool.")
@click.option("--ray-address", default=None,
              help="Address of an existing Ray cluster (e.g. ray://head:10001 or auto); default: "
                   "a local Ray started for this run.")
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="Number of Ray actors (each loads the backbone once).")
@click.option("--num-gpus-per-worker", "num_gpus", type=click.FloatRange(min=0), default=0.0,
              show_default=True, help="GPUs per Ray actor (fractions share a GPU).")
@click.option("--num-cpus-per-worker", "num_cpus", type=click.FloatRange(min=0), default=1.0,
              show_default=True, help="CPUs per Ray actor.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON, YAML or TOML file of configuration fields; flags override it, rows override both.")
@click.option("--force", is_flag=True,
              help="Replace files at OUTDIR/images/ID.png that spl batch did not write (refused otherwise).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--verbose", is_flag=True, help="Also show Ray's own log lines and warnings (--engine ray).")
@click.option("--harmonizer", "harmonizer_name", default="offline", show_default=True,
              help="Harmonizer plug-in that writes the prompts of harmonize rows without them; "
                   "--option NAME.FIELD=VALUE sets its options (a key among them is never written).")
@option_flag
@config_options(EditConfig, BATCH_FIELDS)
@config_options(OldFlags, list(ALIASES))  # old names: each writes its component's option
@handle_errors
def batch(manifest: Path, out_dir: Path, engine: str, ray_address: str | None, concurrency: int,
          num_gpus: float, num_cpus: float, config_file: Path | None, force: bool, quiet: bool,
          verbose: bool, harmonizer_name: str, option_texts: tuple[str, ...], **fields: Any) -> None:
    """Run every edit of MANIFEST (JSONL, CSV, Parquet, or PIE-Bench's mapping_file.json) into OUTDIR.

    Columns: image, source_prompt, target_prompt, optional id, mask, seed, options (a JSON
    object of configuration fields and component options) and task (edit, refine or harmonize;
    refine rows need an 'edited' image and no model; harmonize rows a foreground 'mask' and, without
    prompts, the harmonizer writes them). A rerun skips rows already done; a changed row is
    redone. Exit status 2 when some rows failed (their reasons are in the results table).
    """
    from spl_sdk.config import build_config
    from spl_sdk.harmonizing import HarmonizerChoice, harmonizer_options
    from spl_sdk.options import parse_options
    from spl_sdk.plugins import get_plugins

    options = parse_options(option_texts) if option_texts else None
    # a harmonizer's options (an API key among them) go to the workers in memory, never to the config
    theirs = harmonizer_options(get_plugins(), options) if options else {}
    options = {k: v for k, v in (options or {}).items() if k not in theirs} or None
    base = build_config(EditConfig, config_file, options=options, **fields)
    choice = HarmonizerChoice(harmonizer_name, theirs)
    summary = run_with_progress(manifest, out_dir, base, quiet=quiet, engine=engine, force=force,
                                harmonizer=choice,
                                ray_options={"address": ray_address, "concurrency": concurrency,
                                             "num_gpus": num_gpus, "num_cpus": num_cpus, "verbose": verbose})
    if summary.failed:
        sys.exit(2)


def run_with_progress(manifest: Path | Sequence[Row], out_dir: Path, base: EditConfig, *, quiet: bool,
                      on_record: Callable[[dict[str, Any]], None] | None = None,
                      **run_options: Any) -> BatchSummary:
    """``run_batch`` with the progress bar, the summary line and, on Ctrl-C or SIGTERM, how to resume.

    Shared by ``spl batch`` and ``spl harmonize COMPOSITES MASKS`` (one batch engine, one way to
    report it); ``on_record`` sees each finished row after the progress bar.
    """
    from spl_sdk.jobs.progress import BatchProgress
    from spl_sdk.jobs.runner import run_batch

    progress: list[BatchProgress] = []

    def on_plan(todo: int, skipped: int) -> None:
        if not quiet:
            click.echo(f"{todo} rows to run, {skipped} already done", err=True)
        progress.append(BatchProgress(todo, quiet=quiet))

    def record_done(record: dict[str, Any]) -> None:
        progress[0](record)
        if on_record is not None:
            on_record(record)

    try:
        summary = run_batch(manifest, out_dir, base, on_plan=on_plan, on_record=record_done, **run_options)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (spl_sdk.cli.signals): 128 + signal
        signum = getattr(exc, "signum", signal.SIGINT)
        what = "Interrupted" if signum == signal.SIGINT else f"Stopped by {signal.Signals(signum).name}"
        click.echo(f"{what}; the rows finished so far are recorded in "
                   f"{printable(out_dir / 'results.jsonl')}: run the same command to resume.", err=True)
        sys.exit(128 + signum)
    finally:
        for p in progress:
            p.close()
    if not quiet:
        click.echo(f"{summary.ok} ok, {summary.failed} failed, {summary.skipped} skipped (already done) "
                   f"in {summary.seconds:.1f} s; results in {summary.table}", err=True)
    return summary
