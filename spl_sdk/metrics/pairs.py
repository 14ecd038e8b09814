"""What ``spl eval`` scores: (source, edited, target prompt, edit type, edited-region mask) pairs.

A pair list comes from a finished ``spl batch`` folder (its results table) or from a
manifest whose rows name an ``edited`` image. The edited-region mask comes from
PIE-Bench's mapping file (by id) when there is one, else from an ``eval_mask`` column
(white = edited); without a mask the background metrics and the edited-region CLIP
score are left empty for that row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spl_sdk.errors import ConfigError
from spl_sdk.lazy import numpy as np


@dataclass
class Pair:
    """One source/edited pair to score."""

    id: str
    source: str
    edited: str
    target_prompt: str
    edit_type: str = "all"
    mask_rle: list[int] | None = None
    mask_file: str | None = None


@dataclass
class RunPairs:
    """A run's pairs to score, and the rows it did not finish (reported, never silently dropped)."""

    pairs: list[Pair]
    failed: dict[str, str] = field(default_factory=dict)  # id -> the row's one-line error
    missing: list[str] = field(default_factory=list)  # manifest ids the run has no record of

    @property
    def total(self) -> int:
        """Rows the run was asked for (as far as its manifest is known)."""
        return len(self.pairs) + len(self.failed) + len(self.missing)

    def describe(self) -> str:
        """'3 of 4 rows finished (1 failed, 0 missing)'."""
        return (f"{len(self.pairs)} of {self.total} rows finished ({len(self.failed)} failed, "
                f"{len(self.missing)} missing)")


def _pie_mapping(path: Path) -> dict[str, dict[str, Any]] | None:
    if path.suffix.lower() != ".json" or not path.is_file():
        return None
    from spl_sdk.pie_bench import read_mapping

    return read_mapping(path)


def _batch_manifest(info: Path) -> Path | None:
    """The manifest a batch ran from, as its ``batch.json`` records it (None without the file)."""
    from spl_sdk.parsing import loads, read_text

    if not info.exists():
        return None
    what = f"'{info}'"
    data = loads(read_text(info, what), "json", what)
    if not isinstance(data, dict) or not isinstance(data.get("manifest", ""), str):
        raise ConfigError(f"{what} is not the run information spl batch writes (a JSON object with "
                          f"a 'manifest' path); run the same spl batch command again to rewrite it.")
    return Path(data["manifest"]) if data.get("manifest") else None


def _manifest_ids(manifest: Path | None) -> list[str]:
    """Row ids of the manifest a batch ran from (empty when it is gone or unreadable)."""
    if manifest is None or not manifest.is_file():
        return []
    from spl_sdk.jobs.manifest import read_manifest

    try:
        return [str(row.id) for row in read_manifest(manifest, needs_source=False)]
    except ConfigError:  # the manifest changed since: the journal alone says what ran
        return []


def _records(run: Path) -> tuple[list[dict[str, Any]], dict[str, str], list[str], Path | None]:
    """(finished rows, failed ids -> error, missing ids, manifest) of a batch folder or a manifest."""
    if run.is_dir():
        from spl_sdk.jobs.results import JOURNAL, Journal

        journal = Journal(run / JOURNAL)
        if not journal.path.is_file():
            raise ConfigError(f"'{run}' has no {JOURNAL}; give a folder written by spl batch, or a "
                              f"manifest with an 'edited' column.")
        latest = sorted(journal.latest(strict=True).values(), key=lambda r: r.get("index", 0))
        done = [dict(r, edited=r.get("output")) for r in latest if r.get("status") == "ok"]
        ok = {str(r.get("id")) for r in done}
        failed = {str(r.get("id")): str(r.get("error") or r.get("status"))
                  for r in latest if r.get("status") != "ok" and str(r.get("id")) not in ok}
        manifest = _batch_manifest(run / "batch.json")
        seen = {str(r.get("id")) for r in latest}
        missing = [i for i in dict.fromkeys(_manifest_ids(manifest)) if i not in seen]
        return done, failed, missing, manifest
    from spl_sdk.jobs.manifest import read_manifest

    rows = read_manifest(run)
    return [dict(r.extra, id=r.id, image=r.image, edited=r.edited, target_prompt=r.target_prompt)
            for r in rows], {}, [], run


def read_pairs(run: str | Path, pie_bench: str | Path | None = None) -> list[Pair]:
    """The pairs of a batch folder or manifest; PIE-Bench masks and edit types by id when known."""
    return read_run(run, pie_bench).pairs


def read_run(run: str | Path, pie_bench: str | Path | None = None) -> RunPairs:
    """:func:`read_pairs` plus the rows the run did not finish (failed, or never run)."""
    run = Path(run)
    if not run.exists():
        raise ConfigError(f"'{run}' does not exist; give a spl batch output folder or a manifest.")
    records, failed, missing, manifest = _records(run)
    mapping = _pie_mapping(Path(pie_bench)) if pie_bench else (
        _pie_mapping(manifest) if manifest is not None else None)
    from spl_sdk.pie_bench import clean_prompt, edit_type

    pairs = []
    for rec in records:
        if not rec.get("image") or not isinstance(rec["image"], str):
            raise ConfigError(f"row '{rec.get('id')}' of '{run}' names no source image; give an "
                              f"'image' column.")
        if not rec.get("edited"):
            raise ConfigError(f"row '{rec.get('id')}' of '{run}' names no edited image; give an "
                              f"'edited' column.")
        entry = mapping.get(str(rec.get("id"))) if mapping else None
        eval_mask = str(rec["eval_mask"]) if rec.get("eval_mask") else None
        if eval_mask and not Path(eval_mask).is_absolute() and manifest is not None:
            eval_mask = str(manifest.parent / eval_mask)
        pairs.append(Pair(
            id=str(rec.get("id")), source=str(rec["image"]), edited=str(rec["edited"]),
            target_prompt=clean_prompt(entry.get("editing_prompt", "")) if entry else str(rec.get("target_prompt") or ""),
            edit_type=edit_type(entry) if entry else str(rec.get("edit_type") or "all"),
            mask_rle=list(entry["mask"]) if entry and entry.get("mask") is not None else None,
            mask_file=eval_mask or None))
    if not pairs:
        raise ConfigError(f"'{run}' has no finished rows to evaluate.")
    return RunPairs(pairs, failed, missing)


def edited_region(pair: Pair, size: tuple[int, int]) -> np.ndarray | None:
    """The pair's edited-region mask as a boolean (H, W) array at ``size`` = (W, H), or None."""
    from PIL import Image

    if pair.mask_rle is not None:
        from spl_sdk.metrics.rle import decode_mask

        mask = decode_mask(pair.mask_rle)
    elif pair.mask_file is not None:
        from spl_sdk.imageio import load_mask

        return np.asarray(load_mask(pair.mask_file, size)) >= 128
    else:
        return None
    if mask.shape[::-1] != tuple(size):
        mask = np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))
    return mask
