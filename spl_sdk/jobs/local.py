"""The in-process engine: one worker, rows one after another, the backbone loaded once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from spl_sdk.harmonizing import HarmonizerChoice
from spl_sdk.jobs.worker import Job, RowWorker


def needs_model(jobs: Sequence[Job]) -> bool:
    """True when some job is a runnable edit or harmonize row (refine rows need no model)."""
    return any(j["row"]["task"] in ("edit", "harmonize") and not j["row"]["problem"] for j in jobs)


def run_local(jobs: Sequence[Job], load_config: dict[str, Any],
              on_record: Callable[[dict[str, Any]], None], *,
              harmonizer: HarmonizerChoice | None = None, allow_pickle: bool = False) -> None:
    """Process ``jobs`` in this process, handing each record to ``on_record`` as it is done."""
    worker = RowWorker(load_config, harmonizer, allow_pickle)
    if needs_model(jobs):
        _ = worker.editor  # a model that cannot load stops the batch here, not once per row
    for job in jobs:
        on_record(worker.process(job))
