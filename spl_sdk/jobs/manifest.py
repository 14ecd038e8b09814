"""Manifests: one task per row (edit, refine, harmonize), read from JSONL, CSV, Parquet or PIE-Bench's file."""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spl_sdk.errors import ConfigError

TASKS = ("edit", "refine", "harmonize")
COLUMNS = ("id", "task", "image", "source_prompt", "target_prompt", "mask", "edited", "seed", "options",
           "object")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TOO_LONG = "\0too long"  # marks a CSV row with an over-long field (never a column name)


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
    object: str | None = None  # harmonize rows: the pasted object's words (the harmonizer's guess if None)
    extra: dict[str, Any] = field(default_factory=dict)  # other columns, carried into the results
    problem: str | None = None  # why the row cannot run (recorded as its error)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what travels to workers)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


def read_manifest(path: str | Path, needs_source: bool = True) -> list[Row]:
    """Rows of a JSONL, CSV or Parquet manifest, or of a PIE-Bench ``mapping_file.json``.

    ``needs_source`` False: edit rows of an instruction method (``instruct``) need only the
    instruction, in ``target_prompt``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"manifest '{path}' does not exist; give a .jsonl, .csv or .parquet file.")
    suffix = path.suffix.lower()
    if suffix == ".json":
        from spl_sdk.pie_bench import manifest_records

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
    return manifest_rows(records, path.parent.resolve(), needs_source)


def manifest_rows(records: list[dict[str, Any]], base: Path, needs_source: bool = True) -> list[Row]:
    """Rows of manifest records (paths relative to ``base``), each with its own id."""
    rows = [_row(i, rec, base, needs_source) for i, rec in enumerate(records)]
    _unique_ids(rows)
    return rows


def _jsonl(path: Path) -> list[dict[str, Any]]:
    from spl_sdk.parsing import decode, loads, read_bytes

    records = []
    for number, raw in enumerate(read_bytes(path, f"manifest '{path}'").splitlines(), 1):
        where = f"manifest '{path}' line {number}"
        line = decode(raw, where, bom=number == 1)
        if not line.strip():
            continue
        record = loads(line, "json", where)
        if not isinstance(record, dict):
            raise ConfigError(f"{where} must be a JSON object.")
        records.append(record)
    return records


def _csv(path: Path) -> list[dict[str, Any]]:
    from spl_sdk.parsing import read_text

    text = read_text(path, f"manifest '{path}'", bom=True)
    limit = csv.field_size_limit()
    # read every field whole, then refuse the long ones row by row (csv would abort the file)
    csv.field_size_limit(max(limit, len(text) + 1))
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        records = []
        for rec in reader:
            row = {k.strip(): (v if v != "" else None) for k, v in rec.items() if isinstance(k, str) and k}
            long = sorted(k for k, v in row.items() if isinstance(v, str) and len(v) > limit)
            if long:
                row = {k: (None if k in long else v) for k, v in row.items()}
                row[_TOO_LONG] = (f"column '{long[0]}' holds more than {limit:,} characters (csv's field "
                                  f"limit)")
            records.append(row)
        return records
    except csv.Error as exc:
        raise ConfigError(f"manifest '{path}' is not valid CSV (line {reader.line_num}: {exc}).") from None
    finally:
        csv.field_size_limit(limit)


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


def _seed(value: Any) -> int | None:
    """A whole-number seed (5, 5.0, "5"); None for anything else (1.5, inf, 1e400, text)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(number) or number != int(number):
        return None
    return int(value) if isinstance(value, int) else int(number)


def _row(index: int, rec: dict[str, Any], base: Path, needs_source: bool = True) -> Row:
    """Build a Row; a value that cannot be used becomes the row's ``problem``, not an abort."""
    from spl_sdk.parsing import ParseError, loads

    problems = [rec.pop(_TOO_LONG)] if _TOO_LONG in rec else []
    task = str(rec.get("task") or "edit").strip().lower()
    if task not in TASKS:
        problems.append(f"unknown task '{task[:40]}' (use {', '.join(TASKS)})")
    options = rec.get("options") or {}
    if isinstance(options, str):
        try:
            options = loads(options, "json", "the options column")
        except ParseError:
            options = None
    if not isinstance(options, dict):
        problems.append("the options column must hold a JSON object")
        options = {}
    seed = rec.get("seed")
    if isinstance(seed, float) and seed != seed:  # NaN: an empty cell of a pandas-made file
        seed = None
    if seed is not None:
        seed = _seed(rec["seed"])
        if seed is None:
            problems.append(f"seed {str(rec['seed'])[:40]!r} is not a whole number")
    for name in ("image", "mask", "edited"):
        if "\0" in str(rec.get(name) or ""):  # it would reach os.stat as ValueError
            problems.append(f"the {name} path holds a NUL byte")
            rec = dict(rec, **{name: None if name != "image" else str(rec[name]).replace("\0", "")})
    image = _path(rec.get("image"), base)
    if image is None:
        problems.append("no image")
    edited = _path(rec.get("edited"), base)
    if task == "refine" and edited is None:
        problems.append("a refine row needs an 'edited' image")
    if task == "harmonize":
        problems += _harmonize_problems(rec)
    required = ("source_prompt", "target_prompt") if needs_source else ("target_prompt",)
    for name in ("source_prompt", "target_prompt"):
        if isinstance(rec.get(name), float) and rec[name] != rec[name]:  # NaN: an empty pandas cell
            rec = dict(rec, **{name: None})
        if rec.get(name) is not None and not isinstance(rec[name], str):
            problems.append(f"{name} must be text, not {type(rec[name]).__name__}")
            rec = dict(rec, **{name: str(rec[name])[:200]})
        elif task == "edit" and name in required and not str(rec.get(name) or "").strip():
            problems.append(f"no {name}")
    raw_id = rec.get("id")
    stem = Path(image).stem if image else f"row{index}"
    row_id = _UNSAFE.sub("_", str(raw_id if raw_id not in (None, "") else stem)).strip("._") or f"row{index}"
    extra = {k: v for k, v in rec.items() if k not in COLUMNS}
    return Row(index=index, id=row_id, task=task, image=image,
               source_prompt=rec.get("source_prompt"), target_prompt=rec.get("target_prompt"),
               mask=_path(rec.get("mask"), base), edited=edited, seed=seed, options=options,
               object=_text(rec.get("object")), extra=extra, problem="; ".join(problems) + "." if problems else None)


def _text(value: Any) -> str | None:
    """A cell as text, None when empty (an empty CSV cell, NaN of a pandas-made file)."""
    if value is None or (isinstance(value, float) and value != value) or not str(value).strip():
        return None
    return str(value)


def _harmonize_problems(rec: dict[str, Any]) -> list[str]:
    """Why a harmonize row cannot run: no mask, or one prompt without the other."""
    problems = []
    if _text(rec.get("mask")) is None:
        problems.append("a harmonize row needs a 'mask' (white = the pasted object)")
    given = [name for name in ("source_prompt", "target_prompt") if _text(rec.get(name)) is not None]
    if len(given) == 1:
        problems.append(f"a harmonize row gives both prompts or neither (the harmonizer writes them), "
                        f"not only {given[0]}")
    return problems


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
