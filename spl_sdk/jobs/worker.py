"""One worker: loads the backbone once, then turns jobs (a row, its key and config) into records."""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spl_sdk.errors import SplError
from spl_sdk.jobs.manifest import Row

# {"row": Row.to_dict(), "key": str, "config": dict, "output": str, "replace": bool}; "replace"
# is true only when the file at "output" was written by spl batch (or the user passed --force)
Job = dict[str, Any]


def base_record(row: Row, key: str) -> dict[str, Any]:
    """The row's own fields as they appear in the results table."""
    record: dict[str, Any] = {k: v for k, v in row.extra.items()}
    record.update(key=key, id=row.id, index=row.index, task=row.task, image=row.image,
                  mask=row.mask, edited=row.edited, source_prompt=row.source_prompt,
                  target_prompt=row.target_prompt, seed=row.seed, options=row.options,
                  status="error", error=None, output=None)
    return record


def one_line(exc: BaseException) -> str:
    """An exception as one line: SplError text as is, anything else with its type."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, SplError) else f"{type(exc).__name__}: {text}".rstrip(": ")


class RowWorker:
    """Runs jobs one at a time; the Editor (the slow part) is loaded on the first edit row."""

    def __init__(self, load_config: dict[str, Any]) -> None:
        self.load_config = load_config
        self._editor: Any = None
        self._plugins: Any = None
        self._replace = False  # may the current job replace the file at its output name

    @property
    def plugins(self) -> Any:
        """The plug-in manager of this worker."""
        if self._plugins is None:
            from spl_sdk.plugins import get_plugins

            self._plugins = get_plugins()
        return self._plugins

    @property
    def editor(self) -> Any:
        """The Editor of this worker, loaded once."""
        if self._editor is None:
            from spl_sdk.config import EditConfig
            from spl_sdk.editor import Editor

            self._editor = Editor.from_config(EditConfig(**self.load_config), self.plugins)
        return self._editor

    def process(self, job: Job) -> dict[str, Any]:
        """Run one job; any failure becomes the record's one-line ``error`` and status 'error'."""
        import torch

        row = Row.from_dict(job["row"])
        record = base_record(row, job["key"])
        began = time.perf_counter()
        try:
            if row.problem:
                raise SplError(row.problem)
            run = self._edit if row.task == "edit" else self._refine
            self._replace = bool(job.get("replace"))
            record["timings"] = run(row, job["config"], Path(job["output"]), job["key"])
            record.update(status="ok", output=job["output"])
        except (torch.OutOfMemoryError, MemoryError):
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            record["error"] = ("out of memory; give this row a smaller working_size in its options, "
                               "or run fewer workers per GPU.")
        except Exception as exc:  # one bad row must not stop the batch
            record["error"] = one_line(exc)
        record["seconds"] = round(time.perf_counter() - began, 3)
        record["worker"] = f"{socket.gethostname()}:{os.getpid()}"
        record["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        return record

    def _meta(self, row: Row, key: str) -> dict[str, Any]:
        return {"command": "spl batch", "row_id": row.id, "row_key": key, "image": row.image}

    def _edit(self, row: Row, config: dict[str, Any], output: Path, key: str) -> dict[str, float]:
        from spl_sdk.imageio import load_image, load_mask

        image = load_image(row.image)
        mask = load_mask(row.mask, image.size) if row.mask else None
        result = self.editor.edit(image, row.source_prompt, row.target_prompt, mask=mask, **config)
        result.save(output, force=self._replace, extra=self._meta(row, key))
        return {k: round(v, 4) for k, v in result.timings.items()}

    def _refine(self, row: Row, config: dict[str, Any], output: Path, key: str) -> dict[str, float]:
        from spl_sdk.config import RefineConfig
        from spl_sdk.refiner import refine

        cfg = RefineConfig(**config)
        # the same recipe as ``spl refine`` (alignment included): the same checks, the same pixels
        result = refine(row.image, row.edited, mask=row.mask, config=cfg, plugins=self.plugins,
                        device=self.load_config.get("device") or "auto")
        result.save(output, force=self._replace, extra={"edited": row.edited} | self._meta(row, key))
        return {k: round(v, 4) for k, v in result.timings.items()}
