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
