"""One worker: loads the backbone once, then turns jobs (a row, its key and config) into records."""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spl_sdk.errors import SplError
from spl_sdk.harmonizing import HarmonizerChoice, scrub
from spl_sdk.jobs.manifest import Row
from spl_sdk.text import secret_name

# {"row": Row.to_dict(), "key": str, "config": dict, "output": str, "replace": bool}; "replace"
# is true only when the file at "output" was written by spl batch (or the user passed --force)
Job = dict[str, Any]


def base_record(row: Row, key: str) -> dict[str, Any]:
    """The row's own fields as they appear in the results table."""
    record: dict[str, Any] = {k: v for k, v in row.extra.items()}
    record.update(key=key, id=row.id, index=row.index, task=row.task, image=row.image,
                  mask=row.mask, edited=row.edited, source_prompt=row.source_prompt,
                  target_prompt=row.target_prompt, seed=row.seed, options=masked(row.options),
                  status="error", error=None, output=None)
    return record


def masked(options: Any) -> Any:
    """A row's options with the value of every secret-looking field (api_key, token...) as ***.

    A key a user put into a manifest row stays in that file: the results table, which is
    shared more widely, never copies it.
    """
    if not isinstance(options, dict):
        return options
    return {k: "***" if secret_name(str(k)) and not isinstance(v, dict) else masked(v) for k, v in options.items()}


def one_line(exc: BaseException) -> str:
    """An exception as one line: SplError text as is, anything else with its type."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, SplError) else f"{type(exc).__name__}: {text}".rstrip(": ")


class RowWorker:
    """Runs jobs one at a time; the Editor (the slow part) is loaded on the first edit row.

    ``harmonizer`` writes the prompts of harmonize rows that have none; its options may
    hold a secret, so it reaches the worker in memory only, never through a job.
    """

    def __init__(self, load_config: dict[str, Any], harmonizer: HarmonizerChoice | None = None,
                 allow_pickle: bool = False) -> None:
        self.load_config = load_config
        self.harmonizer_choice = harmonizer or HarmonizerChoice()
        self.allow_pickle = allow_pickle
        self._editors: Any = None
        self._plugins: Any = None
        self._harmonizer: Any = None
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
        """The Editor of this worker, loaded once (spl_sdk.editor_cache, as every door loads it)."""
        from spl_sdk.config import EditConfig
        from spl_sdk.editor_cache import EditorCache
        from spl_sdk.options import check_options

        config = EditConfig(**self.load_config)
        if self._editors is None:
            check_options(self.plugins, config.options)  # a wrong option stops the batch, once
            self._editors = EditorCache(self.plugins, max_entries=1)
        return self._editors.get(config, allow_pickle=self.allow_pickle).editor

    @property
    def harmonizer(self) -> Any:
        """The harmonizer of this worker, built on the first harmonize row that asks it."""
        if self._harmonizer is None:
            self._harmonizer = self.harmonizer_choice.build(self.plugins)
        return self._harmonizer

    def process(self, job: Job) -> dict[str, Any]:
        """Run one job; any failure becomes the record's one-line ``error`` and status 'error'."""
        import torch

        row = Row.from_dict(job["row"])
        record = base_record(row, job["key"])
        began = time.perf_counter()
        try:
            if row.problem:
                raise SplError(row.problem)
            run = {"edit": self._edit, "refine": self._refine, "harmonize": self._harmonize}[row.task]
            self._replace = bool(job.get("replace"))
            record["timings"] = run(row, job["config"], Path(job["output"]), job["key"], record)
            record.update(status="ok", output=job["output"])
        except (torch.OutOfMemoryError, MemoryError):
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            record["error"] = ("out of memory; give this row a smaller working_size in its options, "
                               "or run fewer workers per GPU.")
        except Exception as exc:  # one bad row must not stop the batch
            # belt and braces: no API key in a record, whatever an error message quoted
            record["error"] = scrub(one_line(exc), self.harmonizer_choice.secrets())
        record["seconds"] = round(time.perf_counter() - began, 3)
        record["worker"] = f"{socket.gethostname()}:{os.getpid()}"
        record["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        return record

    def _meta(self, row: Row, key: str) -> dict[str, Any]:
        return {"command": "spl batch", "row_id": row.id, "row_key": key, "image": row.image}

    def _edit(self, row: Row, config: dict[str, Any], output: Path, key: str,
              record: dict[str, Any]) -> dict[str, float]:
        from spl_sdk.imageio import load_image, load_mask

        image = load_image(row.image)
        mask = load_mask(row.mask, image.size) if row.mask else None
        result = self.editor.edit(image, row.source_prompt, row.target_prompt, mask=mask, **config)
        result.save(output, force=self._replace, extra=self._meta(row, key))
        return {k: round(v, 4) for k, v in result.timings.items()}

    def _refine(self, row: Row, config: dict[str, Any], output: Path, key: str,
                record: dict[str, Any]) -> dict[str, float]:
        from spl_sdk.config import RefineConfig
        from spl_sdk.refiner import refine

        cfg = RefineConfig(**config)
        # the same recipe as ``spl refine`` (alignment included): the same checks, the same pixels
        result = refine(row.image, row.edited, mask=row.mask, config=cfg, plugins=self.plugins,
                        device=self.load_config.get("device") or "auto")
        result.save(output, force=self._replace, extra={"edited": row.edited} | self._meta(row, key))
        return {k: round(v, 4) for k, v in result.timings.items()}

    def _harmonize(self, row: Row, config: dict[str, Any], output: Path, key: str,
                   record: dict[str, Any]) -> dict[str, float]:
        from spl_sdk.config import EditConfig
        from spl_sdk.harmonizing import harmonization_record, harmonize_edit
        from spl_sdk.imageio import load_image, load_mask

        image = load_image(row.image)
        foreground = load_mask(row.mask, image.size)
        found = None
        source, target = row.source_prompt, row.target_prompt
        if source is None or target is None:  # the harmonizer writes them (docs/method.md section 6)
            found = self.harmonizer.describe(image, foreground, row.object)
            source, target = found.source_prompt, found.target_prompt
        extra = harmonization_record(found, self.harmonizer_choice.public(self.plugins))
        # the one harmonize recipe, as spl harmonize, the studio and the API run it
        result = harmonize_edit(self.editor, image, foreground, source, target, config=EditConfig(**config),
                                record=extra)
        result.save(output, force=self._replace, extra=self._meta(row, key) | {"mask": row.mask})
        record.update(source_prompt=source, target_prompt=target, **extra)
        return {k: round(v, 4) for k, v in result.timings.items()}
