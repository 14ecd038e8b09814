"""One edit row through every door (``spl edit``, ``spl batch`` local and Ray, the studio's runner,
the Python API) runs the same settings: the same recorded configuration and identical pixels.

Steps and guidance are left unset on the flow backbone on purpose: batch and the studio pass
every field, and the method's own defaults (FlowEdit's per-family ones) must still be filled
in once, by the plan, and recorded as used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import spl_sdk
from spl_sdk import EditConfig, Editor
from spl_sdk.cli import main
from spl_sdk.imageio import read_metadata
from spl_sdk.jobs.runner import run_batch

SOURCE, TARGET = "a photo of an old man", "a painting of an old man"
# backbone -> settings given as flags / config fields (everything else unset)
CASES = {
    "tiny-random-sd15": {"steps": 2, "cross_replace": 0.6},  # an old flag: the controller's option
    "tiny-random-sdxl": {"steps": 2},
    "tiny-random-sd3": {"options": {"flowedit": {"n_max": 2}}},  # 50 steps of which 2 edit
}
COMMON = {"working_size": 64, "iterations": 2, "device": "cpu"}


def _flags(settings: dict) -> list[str]:
    out = []
    for name, value in settings.items():
        if name == "options":
            out += [f"--option={k}.{f}={v}" for k, fields in value.items() for f, v in fields.items()]
        else:
            out += ["--" + name.replace("_", "-"), str(value)]
    return out


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _doors(backbone: str, tmp_path: Path, photo: Path) -> dict[str, Path]:
    """The row through the CLI, the batch engine, the studio's runner path and the API."""
    settings = {"backbone": backbone, **COMMON, **CASES[backbone]}
    out: dict[str, Path] = {}
    # spl edit
    out["spl edit"] = tmp_path / "cli.png"
    run = CliRunner().invoke(main, ["edit", str(photo), "-s", SOURCE, "-t", TARGET, "-o", str(out["spl edit"]),
                                    "-q", *_flags(settings)])
    assert run.exit_code == 0, run.output
    # spl batch (local engine), the same settings as flags, the row with its prompts
    manifest = tmp_path / "rows.jsonl"
    manifest.write_text(json.dumps({"id": "row", "image": str(photo), "source_prompt": SOURCE,
                                    "target_prompt": TARGET}), encoding="utf-8")
    run = CliRunner().invoke(main, ["batch", str(manifest), "-o", str(tmp_path / "batch"), "-q",
                                    *_flags(settings)])
    assert run.exit_code == 0, run.output
    out["spl batch"] = tmp_path / "batch" / "images" / "row.png"
    # the studio: a config with every widget's field given, the cached editor, the PNG it offers
    from spl_apps import resources, runner

    studio_cfg = EditConfig(**{**EditConfig().model_dump(), **settings})
    editor = resources.editor_for(studio_cfg).editor
    result = editor.edit(Image.open(photo), SOURCE, TARGET, **resources.edit_overrides(studio_cfg))
    out["studio"] = tmp_path / "studio.png"
    out["studio"].write_bytes(runner.png_with_metadata(result.image, result.metadata()))
    # the Python API
    out["api"] = tmp_path / "api.png"
    Editor.from_config(EditConfig(**settings)).edit(photo, SOURCE, TARGET).save(out["api"])
    return out


@pytest.mark.parametrize("backbone", list(CASES))
def test_one_row_through_every_door_runs_the_same_edit(backbone, tmp_path, example_image) -> None:
    photo = tmp_path / "photo.png"
    example_image.resize((64, 64)).save(photo)
    outputs = _doors(backbone, tmp_path, photo)
    configs = {door: read_metadata(path)["config"] for door, path in outputs.items()}
    reference = configs["api"]
    for door, config in configs.items():
        assert config == reference, door
        assert np.array_equal(_pixels(outputs[door]), _pixels(outputs["api"])), door
    # every value is filled in and recorded as used: the owner's defaults, never None
    assert None not in (reference["steps"], reference["source_guidance"], reference["target_guidance"],
                        reference["solver"], reference["method"], reference["working_size"])
    if backbone == "tiny-random-sd3":  # FlowEdit's SD3 row, not the InfEdit defaults (15, 1, 2)
        assert (reference["steps"], reference["source_guidance"], reference["target_guidance"]) == \
            (50, 3.5, 13.5)
    if backbone == "tiny-random-sd15":  # the old flag is recorded as the controller's option
        assert reference["options"]["unified"]["cross_replace"] == 0.6
        assert "cross_replace" not in reference


@pytest.mark.slow  # starting Ray and an actor takes tens of seconds on 2 busy cores
def test_the_ray_engine_runs_the_same_edit_as_the_api(tmp_path, example_image) -> None:
    ray = pytest.importorskip("ray", reason="the Ray engine is an extra: pip install 'spl-sdk[ray]'")
    photo = tmp_path / "photo.png"
    example_image.resize((64, 64)).save(photo)
    settings = {"backbone": "tiny-random-sd3", **COMMON, **CASES["tiny-random-sd3"]}
    manifest = tmp_path / "rows.jsonl"
    manifest.write_text(json.dumps({"id": "row", "image": str(photo), "source_prompt": SOURCE,
                                    "target_prompt": TARGET}), encoding="utf-8")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    try:
        summary = run_batch(manifest, tmp_path / "ray", EditConfig(**settings), engine="ray",
                            ray_options={"concurrency": 1, "num_cpus": 1})
    finally:
        ray.shutdown()
    assert summary.ok == 1, summary.records
    api = tmp_path / "api.png"
    Editor.from_config(EditConfig(**settings)).edit(photo, SOURCE, TARGET).save(api)
    remote = tmp_path / "ray" / "images" / "row.png"
    assert read_metadata(remote)["config"] == read_metadata(api)["config"]
    assert np.array_equal(_pixels(remote), _pixels(api))


# ------------------------------------------------------------------ harmonize
HARMONIZE = {"backbone": "tiny-random-sd15", "working_size": 64, "steps": 2, "iterations": 2, "device": "cpu"}


def test_one_composite_through_every_harmonize_door_runs_the_same_edit(tmp_path, example_image) -> None:
    from spl_apps import resources
    from spl_sdk.harmonizing import (  # the recipe
        HarmonizerChoice,
        harmonization_record,
        harmonize_edit,
    )
    from spl_sdk.plugins import get_plugins

    comps, masks = tmp_path / "composites", tmp_path / "masks"
    comps.mkdir()
    masks.mkdir()
    composite = example_image.resize((64, 48))
    foreground = Image.new("L", composite.size, 0)
    foreground.paste(255, (16, 12, 48, 36))
    composite.save(comps / "cat.png")
    foreground.save(masks / "cat.png")
    flags = _flags(HARMONIZE)
    out: dict[str, Path] = {"spl harmonize": tmp_path / "single.png"}
    run = CliRunner().invoke(main, ["harmonize", str(comps / "cat.png"), str(masks / "cat.png"),
                                    "-o", str(out["spl harmonize"]), "-q", *flags])
    assert run.exit_code == 0, run.output
    run = CliRunner().invoke(main, ["harmonize", str(comps), str(masks), "-o", str(tmp_path / "folders"),
                                    "-q", *flags])
    assert run.exit_code == 0, run.output
    out["spl harmonize DIR DIR"] = tmp_path / "folders" / "images" / "cat.png"
    # the API: the harmonizer's prompts, then the recipe on an editor loaded with the plain settings
    plugins = get_plugins()
    choice = HarmonizerChoice()
    found = choice.build(plugins).describe(composite, foreground, None)
    record = harmonization_record(found, choice.public(plugins))
    out["api"] = tmp_path / "api.png"
    spl_sdk.harmonize_edit(Editor.from_config(EditConfig(**HARMONIZE)), composite, foreground, found.source_prompt,
                   found.target_prompt, record=record).save(out["api"])
    # spl batch: one row asks the harmonizer, one carries the prompts it wrote
    rows = [{"id": "asked", "task": "harmonize", "image": str(comps / "cat.png"), "mask": str(masks / "cat.png")},
            {"id": "given", "task": "harmonize", "image": str(comps / "cat.png"), "mask": str(masks / "cat.png"),
             "source_prompt": found.source_prompt, "target_prompt": found.target_prompt}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run = CliRunner().invoke(main, ["batch", str(tmp_path / "rows.jsonl"), "-o", str(tmp_path / "batch"), "-q",
                                    *flags])
    assert run.exit_code == 0, run.output
    out["spl batch (asked)"] = tmp_path / "batch" / "images" / "asked.png"
    out["spl batch (given)"] = tmp_path / "batch" / "images" / "given.png"
    # the studio: every widget's field given, the cached editor, what its runner calls
    studio_cfg = EditConfig(**{**EditConfig().model_dump(), **HARMONIZE})
    result = harmonize_edit(resources.editor_for(studio_cfg).editor, composite, foreground, found.source_prompt,
                            found.target_prompt, config=studio_cfg, record=record)
    out["studio"] = tmp_path / "studio.png"
    out["studio"].write_bytes(runner_png(result))

    metas = {door: read_metadata(path) for door, path in out.items()}
    reference = metas["api"]
    assert (reference["config"]["structure_loss"], reference["config"]["structure_area"],
            reference["config"]["color_loss"], reference["config"]["color_area"]) == ("spl", "whole", "cpl", "masked")
    for door, meta in metas.items():
        assert meta["config"] == reference["config"], door
        assert (meta["source_prompt"], meta["target_prompt"]) == (found.source_prompt, found.target_prompt), door
        assert np.array_equal(_pixels(out[door]), _pixels(out["api"])), door
        if door != "spl batch (given)":  # prompts given: no harmonizer asked, none recorded
            assert (meta["harmonizer"], meta["harmonization"]) == ("offline", found.model_dump(mode="json")), door
    assert metas["spl batch (given)"]["harmonization"] is None
    # and the edit really is the harmonizing one: CPL keeps the background, the object moves
    plain = tmp_path / "plain.png"
    Editor.from_config(EditConfig(**HARMONIZE)).edit(composite, found.source_prompt, found.target_prompt).save(plain)
    assert not np.array_equal(_pixels(plain), _pixels(out["api"]))


def runner_png(result) -> bytes:
    """The PNG the studio offers for a result (its metadata included)."""
    from spl_apps import runner

    return runner.png_with_metadata(result.image, result.metadata())
