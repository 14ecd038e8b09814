"""Manifests: one edit per row, read from JSONL, CSV, Parquet or a PIE-Bench mapping file."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spl_sdk.errors import ConfigError

TASKS = ("edit", "refine")
COLUMNS = ("id", "task", "image", "source_prompt", "target_prompt", "mask", "edited", "seed", "options")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Row:
    """One manifest row, paths resolved against the manifest's folder."""

    index: int
    id: str
    task: str = "edit"
    image: str | None = None
    source_prompt: str | None = None
    target_prompt: str | None = None
    mask: str | None = None
    edited: str | None = None
    seed: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # other columns, carried into the results
    problem: str | None = None  # why the row cannot run (recorded as its error)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what travels to workers)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


def read_manifest(path: str | Path) -> list[Row]:
    """Rows of a JSONL, CSV or Parquet manifest, or of a PIE-Bench ``mapping_file.json``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"manifest '{path}' does not exist; give a .jsonl, .csv or .parquet file.")
    suffix = path.suffix.lower()
    if suffix == ".json":
        from spl_sdk.metrics.pie_bench import manifest_records

        records = manifest_records(path)
    elif suffix in (".jsonl", ".ndjson"):
        records = _jsonl(path)
    elif suffix == ".csv":
        records = _csv(path)
    elif suffix in (".parquet", ".pq"):
        records = _parquet(path)
    else:
        raise ConfigError(f"manifest '{path}' must end in .jsonl, .csv or .parquet "
                          f"(or be a PIE-Bench mapping_file.json).")
    if not records:
        raise ConfigError(f"manifest '{path}' has no rows.")
    rows = [_row(i, rec, path.parent.resolve()) for i, rec in enumerate(records)]
    _unique_ids(rows)
    return rows


def _jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"manifest '{path}' line {number} is not valid JSON ({exc}).") from None
        if not isinstance(record, dict):
            raise ConfigError(f"manifest '{path}' line {number} must be a JSON object.")
        records.append(record)
    return records


def _csv(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return [{k.strip(): (v if v != "" else None) for k, v in rec.items() if k}
                for rec in csv.DictReader(f)]


def _parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError...
        raise ConfigError(f"manifest '{path}' is not a readable Parquet file ({exc}).") from None


def _path(value: Any, base: Path) -> str | None:
    if value is None or (isinstance(value, float) and value != value):  # NaN from pandas-made files
        return None
    p = Path(str(value)).expanduser()
    return str(p if p.is_absolute() else base / p)


def _row(index: int, rec: dict[str, Any], base: Path) -> Row:
    """Build a Row; a value that cannot be used becomes the row's ``problem``, not an abort."""
    problems = []
    task = str(rec.get("task") or "edit").strip().lower()
    if task not in TASKS:
        problems.append(f"unknown task '{task}' (use edit or refine)")
    options = rec.get("options") or {}
    if isinstance(options, str):
        try:
            options = json.loads(options)
        except ValueError:
            options = None
    if not isinstance(options, dict):
        problems.append("the options column must hold a JSON object")
        options = {}
    seed = rec.get("seed")
    if seed is not None:
        try:
            seed = int(float(seed)) if float(seed) == int(float(seed)) else None
        except (TypeError, ValueError):
            seed = None
        if seed is None:
            problems.append(f"seed {rec.get('seed')!r} is not a whole number")
    image = _path(rec.get("image"), base)
    if image is None:
        problems.append("no image")
    edited = _path(rec.get("edited"), base)
    if task == "refine" and edited is None:
        problems.append("a refine row needs an 'edited' image")
    if task == "edit":
        for name in ("source_prompt", "target_prompt"):
            if not str(rec.get(name) or "").strip():
                problems.append(f"no {name}")
    raw_id = rec.get("id")
    stem = Path(image).stem if image else f"row{index}"
    row_id = _UNSAFE.sub("_", str(raw_id if raw_id not in (None, "") else stem)).strip("._") or f"row{index}"
    extra = {k: v for k, v in rec.items() if k not in COLUMNS}
    return Row(index=index, id=row_id, task=task, image=image,
               source_prompt=rec.get("source_prompt"), target_prompt=rec.get("target_prompt"),
               mask=_path(rec.get("mask"), base), edited=edited, seed=seed, options=options,
               extra=extra, problem="; ".join(problems) + "." if problems else None)


def _unique_ids(rows: list[Row]) -> None:
    """Repeated ids get -2, -3... in row order, so every row has its own output file."""
    seen: dict[str, int] = {}
    taken = {r.id for r in rows}
    for row in rows:
        n = seen.get(row.id, 0) + 1
        seen[row.id] = n
        if n > 1:
            candidate = f"{row.id}-{n}"
            while candidate in taken:
                n += 1
                candidate = f"{row.id}-{n}"
            seen[row.id] = n
            taken.add(candidate)
            row.id = candidate
