"""The results table: an append-only journal while running, one record per row when done.

``results.jsonl`` is the journal: every finished row appends one line, flushed and
fsynced, so a killed run loses at most the rows in flight. The latest record of a
key wins. At the end of a run the file is rewritten (atomically) with exactly one
record per manifest row in manifest order, and ``results.parquet`` is written
next to it with the same records (timings flattened to ``seconds_<phase>`` columns).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spl_sdk.errors import ConfigError
from spl_sdk.jobs.jsonl import JsonlLog

JOURNAL = "results.jsonl"
TABLE = "results.parquet"


# the types the fields spl batch itself fills must have for a journal record to be trusted
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "key": (str,), "id": (str,), "status": (str,), "index": (int,), "task": (str,),
    "output": (str, type(None)), "image": (str, type(None)), "edited": (str, type(None)),
    "error": (str, type(None)),
}


def record_problem(record: dict[str, Any]) -> str | None:
    """Why a journal record cannot be trusted (a field of the wrong type, no key), or None."""
    if "key" not in record:
        return "it has no 'key'"
    for name, types in FIELD_TYPES.items():
        value = record.get(name)
        if name in record and (not isinstance(value, types) or isinstance(value, bool)):
            return f"'{name}' is {type(value).__name__}, not {' or '.join(t.__name__ for t in types)}"
    return None


class Journal(JsonlLog):
    """The batch journal: :class:`spl_sdk.jobs.jsonl.JsonlLog` records keyed by ``key``."""

    def latest(self, strict: bool = False) -> dict[str, dict[str, Any]]:
        """The last well-formed record of every key.

        A record with fields of the wrong type is skipped (its row is redone), or, with
        ``strict`` (what ``spl eval`` reads), one ConfigError naming its line.
        """
        out: dict[str, dict[str, Any]] = {}
        for number, record in self.numbered(strict):
            problem = record_problem(record)
            if problem is None:
                out[record["key"]] = record
            elif strict:
                raise ConfigError(f"line {number} of the journal '{self.path}' is malformed ({problem}); "
                                  f"run the same spl batch command again to redo that row.")
        return out


def write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (spl_sdk.imageio.atomic_write: temp, fsync, publish)."""
    from spl_sdk.imageio import atomic_write

    with atomic_write(path, force=True) as f:
        f.write(data)


def flat(record: dict[str, Any]) -> dict[str, Any]:
    """A table-ready record: timings as ``seconds_<phase>`` columns, nested values as JSON text."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "timings" and isinstance(value, dict):
            out.update({f"seconds_{k}": float(v) for k, v in value.items()})
        elif isinstance(value, (dict, list, tuple)):
            out[key] = json.dumps(value, sort_keys=True, default=str)
        else:
            out[key] = value
    return out


def write_table(records: list[dict[str, Any]], out_dir: Path) -> tuple[Path, Path]:
    """Rewrite the journal with ``records`` (one per row) and write the Parquet table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    text = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records)
    write_bytes(out_dir / JOURNAL, text.encode("utf-8"))
    rows = [flat(r) for r in records]
    columns = sorted({k for r in rows for k in r})
    for c in columns:  # a column mixing kinds of value (a user column) is stored as text
        kinds = {type(r[c]) for r in rows if r.get(c) is not None}
        if len(kinds - {int, float}) > 1 or (kinds & {int, float} and kinds - {int, float}):
            for r in rows:
                if r.get(c) is not None:
                    r[c] = str(r[c])
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows]) if rows \
        else pa.table({})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_bytes(out_dir / TABLE, sink.getvalue().to_pybytes())
    return out_dir / JOURNAL, out_dir / TABLE
