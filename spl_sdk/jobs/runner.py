"""``run_batch``: read the manifest, key the rows, skip what is done, run the rest, write the table."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spl_sdk.config import EditConfig
from spl_sdk.errors import ConfigError, SplError
from spl_sdk.harmonizing import HarmonizerChoice
from spl_sdk.jobs.keys import row_key
from spl_sdk.jobs.manifest import Row, read_manifest
from spl_sdk.jobs.results import JOURNAL, Journal, write_bytes, write_table
from spl_sdk.jobs.rowconfig import effective_config, key_config
from spl_sdk.jobs.worker import Job
from spl_sdk.plugins import get_plugins
from spl_sdk.version import __version__

IMAGES = "images"
RUN_INFO = "batch.json"
ENGINES = ("local", "ray")


@dataclass
class BatchSummary:
    """What a run did: rows in the manifest, skipped (already done), ok and failed this run."""

    total: int
    skipped: int
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    journal: Path | None = None
    table: Path | None = None
    records: list[dict[str, Any]] = field(default_factory=list)


def _metadata(path: Path) -> dict[str, Any] | None:
    """The spl metadata of an image that decodes whole, else None (damaged, emptied, not ours)."""
    from spl_sdk.imageio import read_metadata

    try:
        return read_metadata(path)
    except SplError:
        return None


def _is_done(record: dict[str, Any] | None, output: Path, key: str) -> bool:
    """A record of this row's success whose output is this row's file, decodes and carries its key."""
    if not record or record.get("status") != "ok" or record.get("output") != str(output):
        return False
    meta = _metadata(output) if output.is_file() else None
    return meta is not None and meta.get("row_key") == key


def _ours(output: Path, row: Row, recorded: set[str]) -> bool:
    """True when a file at ``output`` was written by spl batch: a record names it, or its metadata."""
    if str(output) in recorded:
        return True
    meta = _metadata(output) if output.is_file() else None
    return meta is not None and meta.get("command") == "spl batch" and meta.get("row_id") == row.id


def plan(rows: list[Row], base: EditConfig, out_dir: Path, latest: dict[str, dict[str, Any]],
         force: bool = False, harmonizer: dict[str, Any] | None = None,
         ) -> tuple[list[str], list[Job], dict[str, dict[str, Any]]]:
    """(row keys in manifest order, jobs to run, records already done keyed by row key).

    A row is done only when its output still decodes and carries the row's key; a file at
    a row's output name that spl batch did not write is replaced only with ``force``.
    ``harmonizer``: the public name and options of the harmonizer (part of harmonize rows' keys).
    """
    keys, jobs, done = [], [], {}
    recorded = {str(r["output"]) for r in latest.values() if r.get("output")}
    for row in rows:
        config: dict[str, Any] | None = None
        keyed: dict[str, Any] | None = None
        try:
            cfg = effective_config(row, base)
            config, keyed = cfg.model_dump(mode="json"), key_config(cfg)
        except ConfigError as exc:
            row.problem = f"{row.problem} {exc}" if row.problem else str(exc)
        key = row_key(row, keyed, harmonizer)
        keys.append(key)
        output = out_dir / IMAGES / f"{row.id}.png"
        if _is_done(latest.get(key), output, key):
            done[key] = latest[key]
            continue
        taken = output.exists() or output.is_symlink()
        replace = taken and (force or _ours(output, row, recorded))
        if taken and not replace and not row.problem:
            row.problem = (f"'{output}' already exists and was not written by spl batch for this row; "
                           f"move it away, or pass --force to replace it.")
        jobs.append({"row": row.to_dict(), "key": key, "config": config, "output": str(output),
                     "replace": replace})
    return keys, jobs, done


def _prepare(out_dir: Path) -> None:
    """Create OUTDIR; a path through a file or a folder we may not write is one line naming it."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SplError(f"cannot create the output folder '{out_dir}' ({exc.strerror or exc}); choose "
                       f"another -o folder.") from None


@contextlib.contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    """One run per OUTDIR at a time (POSIX advisory lock; a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        handle = open(out_dir / ".spl-batch.lock", "w")  # closed by the with below
    except OSError as exc:
        raise SplError(f"cannot write in the output folder '{out_dir}' ({exc.strerror or exc}); "
                       f"check its permissions or choose another -o folder.") from None
    with handle as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SplError(f"another spl batch is writing to '{out_dir}'; wait for it or use another "
                           f"-o folder.") from None
        yield


def _clean_temp_files(folder: Path) -> None:
    """Half-written images of a killed run (atomic writes leave only hidden temp files)."""
    if folder.is_dir():
        for tmp in folder.glob(".*.spl-tmp"):
            tmp.unlink(missing_ok=True)


def _needs_source(config: EditConfig) -> bool:
    """Whether the run's edit method reads a source prompt (``instruct`` reads the instruction alone)."""
    try:
        plugins = get_plugins()
        method = config.method or plugins.backbone(config.backbone).default_method
        return bool(plugins.edit_method(method).uses_source_prompt)
    except SplError:  # an unknown name is reported where the run resolves it
        return True


def run_batch(manifest: str | Path | Sequence[Row], out_dir: str | Path, base: EditConfig | None = None, *,
              engine: str = "local", on_record: Callable[[dict[str, Any]], None] | None = None,
              on_plan: Callable[[int, int], None] | None = None,
              ray_options: dict[str, Any] | None = None, force: bool = False,
              harmonizer: HarmonizerChoice | None = None, allow_pickle: bool = False) -> BatchSummary:
    """Run every row of ``manifest`` (a file, or rows already read) not yet done into ``out_dir``.

    ``on_plan(todo, skipped)`` is called once the rows are keyed; ``on_record(record)``
    after each finished row. ``ray_options``: address, concurrency, num_gpus, num_cpus.
    ``force`` lets rows replace files at their output names that spl batch did not write.
    ``harmonizer`` writes the prompts of harmonize rows without them (default: offline); its
    options travel to the workers in memory, only their public part reaches a file or a key.
    ``allow_pickle`` lets the backbone load pickle weights (trusted folders only).
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine '{engine}'; use one of {', '.join(ENGINES)}.")
    base = base or EditConfig()
    out_dir = Path(out_dir).resolve()  # records keep absolute paths: eval works from any folder
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"-o '{out_dir}' is a file; give a folder for the batch's outputs.")
    rows = list(manifest) if not isinstance(manifest, (str, Path)) else \
        read_manifest(manifest, needs_source=_needs_source(base))
    if not rows:
        raise ConfigError("the batch has no rows; give a manifest with at least one row.")
    harmonizer = harmonizer or HarmonizerChoice()
    public = harmonizer.public(get_plugins()) if any(r.task == "harmonize" for r in rows) else None
    if engine == "ray":
        from spl_sdk.jobs.ray_engine import check_reachable, import_ray

        if not import_ray().is_initialized():  # fail before any work: the extra, the cluster
            check_reachable((ray_options or {}).get("address"))
    _prepare(out_dir)
    began = time.perf_counter()
    with _locked(out_dir):
        journal = Journal(out_dir / JOURNAL)
        keys, jobs, final = plan(rows, base, out_dir, journal.latest(), force, public)
        summary = BatchSummary(total=len(rows), skipped=len(final))
        if on_plan is not None:
            on_plan(len(jobs), len(final))
        info = {"spl_sdk": __version__, "engine": engine, "config": base.model_dump(mode="json"),
                # rows built in memory (spl harmonize COMPOSITES MASKS) have no manifest file
                "manifest": str(Path(manifest).resolve()) if isinstance(manifest, (str, Path)) else "",
                "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
        if public is not None:
            info["harmonizer"] = public  # never a secret: HarmonizerChoice.public leaves them out
        write_bytes(out_dir / RUN_INFO, json.dumps(info, indent=2, sort_keys=True).encode())
        _clean_temp_files(out_dir / IMAGES)
        _clean_temp_files(out_dir)  # a table rewrite cut off by a kill

        def record_done(record: dict[str, Any]) -> None:
            journal.append(record)  # fsynced before anything else sees the row as done
            final[record["key"]] = record
            if record.get("status") == "ok":
                summary.ok += 1
            else:
                summary.failed += 1
            if on_record is not None:
                on_record(record)

        if jobs:
            load_config = base.model_dump(mode="json")
            if engine == "local":
                from spl_sdk.jobs.local import run_local

                run_local(jobs, load_config, record_done, harmonizer=harmonizer, allow_pickle=allow_pickle)
            else:
                from spl_sdk.jobs.ray_engine import run_ray

                run_ray(jobs, load_config, record_done, harmonizer=harmonizer, allow_pickle=allow_pickle,
                        **(ray_options or {}))
        summary.records = [final[k] for k in keys if k in final]
        summary.journal, summary.table = write_table(summary.records, out_dir)
    summary.seconds = time.perf_counter() - began
    return summary
