"""Manifests (JSONL, CSV, Parquet), row problems, per-row configuration and row keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from spl_sdk.config import EditConfig
from spl_sdk.errors import ConfigError
from spl_sdk.jobs.keys import row_key
from spl_sdk.jobs.manifest import read_manifest
from spl_sdk.jobs.rowconfig import effective_config, key_config, row_overrides


def _image(path: Path, color: tuple[int, int, int] = (10, 20, 30)) -> Path:
    Image.new("RGB", (16, 12), color).save(path)
    return path


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_the_three_formats_give_the_same_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _image(tmp_path / "cat.png")
    rows = [{"image": "cat.png", "source_prompt": "a cat", "target_prompt": "a dog", "seed": 3,
             "options": {"steps": 4}, "edit_type": "change object"}]
    _jsonl(tmp_path / "m.jsonl", rows)
    (tmp_path / "m.csv").write_text(
        'image,source_prompt,target_prompt,seed,options,edit_type\n'
        'cat.png,a cat,a dog,3,"{""steps"": 4}",change object\n', encoding="utf-8")
    pq.write_table(pa.Table.from_pylist([dict(rows[0], options=json.dumps({"steps": 4}))]), tmp_path / "m.parquet")
    read = [read_manifest(tmp_path / f"m.{ext}")[0] for ext in ("jsonl", "csv", "parquet")]
    for row in read:
        assert (row.id, row.image, row.seed, row.options) == ("cat", str(tmp_path / "cat.png"), 3, {"steps": 4})
        assert row.extra == {"edit_type": "change object"} and row.problem is None


def test_bad_rows_carry_a_reason_and_ids_stay_unique(tmp_path):
    manifest = _jsonl(tmp_path / "m.jsonl", [
        {"image": "a.png", "source_prompt": "x", "target_prompt": "y"},
        {"image": "a.png", "source_prompt": "x", "target_prompt": "z"},
        {"image": "b.png", "source_prompt": "", "target_prompt": "y", "seed": "one"},
        {"task": "refine", "image": "a.png"},
        {"task": "paint", "image": "a.png", "source_prompt": "x", "target_prompt": "y"},
    ])
    rows = read_manifest(manifest)
    assert [r.id for r in rows] == ["a", "a-2", "b", "a-3", "a-4"]
    assert rows[0].problem is None
    assert "no source_prompt" in rows[2].problem and "seed 'one'" in rows[2].problem
    assert "needs an 'edited' image" in rows[3].problem
    assert "unknown task 'paint'" in rows[4].problem


def test_unreadable_manifests_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_manifest(tmp_path / "none.jsonl")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"\.jsonl, \.csv or \.parquet"):
        read_manifest(tmp_path / "m.txt")
    (tmp_path / "m.jsonl").write_text('{"image": "a.png"}\n{oops\n')
    with pytest.raises(ConfigError, match="line 2 is not valid JSON"):
        read_manifest(tmp_path / "m.jsonl")


def test_options_seed_and_config_columns_become_overrides(tmp_path):
    manifest = _jsonl(tmp_path / "m.jsonl", [
        {"image": "a.png", "source_prompt": "x", "target_prompt": "y", "seed": 7, "steps": 3,
         "options": {"target_guidance": 4.5}},
        {"image": "a.png", "source_prompt": "x", "target_prompt": "y", "mask": "m.png"},
        {"image": "a.png", "source_prompt": "x", "target_prompt": "y", "options": {"steps": 0}},
    ])
    rows = read_manifest(manifest)
    base = EditConfig(backbone="tiny-random-sd15")
    assert row_overrides(rows[0], base) == {"steps": 3, "target_guidance": 4.5, "seed": 7}
    cfg = effective_config(rows[0], base)
    assert (cfg.seed, cfg.steps, cfg.target_guidance, cfg.backbone) == (7, 3, 4.5, "tiny-random-sd15")
    # a lone mask restricts the losses, as spl edit --mask does
    assert effective_config(rows[1], base).structure_area == "masked"
    with pytest.raises(ConfigError, match="'steps'"):
        effective_config(rows[2], base)


def test_row_keys_follow_inputs_prompts_options_and_seed(tmp_path):
    image = _image(tmp_path / "a.png")
    rows = {"base": {"image": "a.png", "source_prompt": "x", "target_prompt": "y"}}
    rows["prompt"] = dict(rows["base"], target_prompt="z")
    rows["seed"] = dict(rows["base"], seed=5)
    rows["options"] = dict(rows["base"], options={"steps": 3})
    base = EditConfig(backbone="tiny-random-sd15")

    def keys() -> dict[str, str]:
        out = {}
        for name, rec in rows.items():
            row = read_manifest(_jsonl(tmp_path / "m.jsonl", [dict(rec, id="r")]))[0]
            out[name] = row_key(row, key_config(effective_config(row, base)))
        return out

    first = keys()
    assert len(set(first.values())) == 4  # each change gives another key
    assert keys() == first  # and the same row gives the same key again
    # placement (device) does not change the key; the image's bytes do
    row = read_manifest(_jsonl(tmp_path / "m.jsonl", [dict(rows["base"], id="r")]))[0]
    on_cpu = row_key(row, key_config(effective_config(row, base.model_copy(update={"device": "cpu"}))))
    assert on_cpu == first["base"]
    _image(image, (200, 20, 30))
    assert keys()["base"] != first["base"]


def test_component_options_of_a_row_merge_over_the_runs(tmp_path):
    manifest = _jsonl(tmp_path / "m.jsonl", [
        {"image": "a.png", "source_prompt": "x", "target_prompt": "y",
         "options": {"spl": {"radius": 3}, "steps": 2}},
        {"image": "a.png", "source_prompt": "x", "target_prompt": "y",
         "options": {"options": {"loss/spl": {"radius": 4}}}},
    ])
    rows = read_manifest(manifest)
    base = EditConfig(backbone="tiny-random-sd15", options={"spl": {"eps": 0.001}})
    assert row_overrides(rows[0], base) == {"options": {"spl": {"radius": 3}}, "steps": 2}
    cfg = effective_config(rows[0], base)
    assert cfg.options == {"spl": {"eps": 0.001, "radius": 3}} and cfg.steps == 2
    assert effective_config(rows[1], base).options == {"spl": {"eps": 0.001}, "loss/spl": {"radius": 4}}
    keys = {row_key(r, key_config(effective_config(r, base))) for r in rows}
    assert len(keys) == 2


def test_a_pie_bench_mapping_given_by_a_relative_path_finds_its_images(tmp_path, monkeypatch):
    from spl_sdk.jobs.manifest import read_manifest

    folder = tmp_path / "PIE-Bench_v1"
    (folder / "annotation_images" / "0_x").mkdir(parents=True)
    (folder / "annotation_images" / "0_x" / "1.jpg").write_bytes(b"")
    (folder / "mapping_file.json").write_text(json.dumps({"000000000001": {
        "image_path": "0_x/1.jpg", "editing_type_id": "0", "original_prompt": "a [cat]",
        "editing_prompt": "a [dog]", "editing_instruction": "", "blended_word": "cat dog", "mask": [0, 4]}}))
    monkeypatch.chdir(tmp_path)
    (row,) = read_manifest(Path("PIE-Bench_v1") / "mapping_file.json")
    assert Path(row.image) == (folder / "annotation_images" / "0_x" / "1.jpg").resolve()


def test_harmonize_rows_need_a_mask_and_both_prompts_or_neither(tmp_path):
    _image(tmp_path / "c.png")
    _image(tmp_path / "m.png", (255, 255, 255))
    rows = read_manifest(_jsonl(tmp_path / "m.jsonl", [
        {"task": "harmonize", "image": "c.png", "mask": "m.png", "object": "cat"},
        {"task": "harmonize", "image": "c.png"},
        {"task": "harmonize", "image": "c.png", "mask": "m.png", "target_prompt": "bright cat"},
        {"task": "harmonize", "image": "c.png", "mask": "m.png", "source_prompt": "dim cat",
         "target_prompt": "bright cat", "structure_area": "masked", "color_loss": "none", "steps": 3},
        {"task": "paint", "image": "c.png"}]))
    assert rows[0].problem is None and rows[0].object == "cat" and rows[0].mask == str(tmp_path / "m.png")
    assert rows[1].problem == "a harmonize row needs a 'mask' (white = the pasted object)."
    assert "both prompts or neither" in rows[2].problem
    assert "use edit, refine, harmonize" in rows[4].problem
    # docs/method.md section 6's losses win over the row's; the row's other settings stay
    cfg = effective_config(rows[3], EditConfig())
    assert (cfg.structure_loss, cfg.structure_area, cfg.color_loss, cfg.color_area, cfg.steps) == (
        "spl", "whole", "cpl", "masked", 3)


def test_harmonize_row_keys_hold_the_object_and_the_harmonizer_only_when_it_is_asked(tmp_path):
    _image(tmp_path / "c.png")
    _image(tmp_path / "m.png", (255, 255, 255))
    asked, given, edit = read_manifest(_jsonl(tmp_path / "m.jsonl", [
        {"task": "harmonize", "image": "c.png", "mask": "m.png"},
        {"task": "harmonize", "image": "c.png", "mask": "m.png", "source_prompt": "a", "target_prompt": "b"},
        {"image": "c.png", "source_prompt": "a", "target_prompt": "b"}]))
    offline, openai = {"name": "offline", "options": {}}, {"name": "openai", "options": {"model": "x"}}
    assert row_key(asked, {}, offline) != row_key(asked, {}, openai)
    assert row_key(given, {}, offline) == row_key(given, {}, openai)  # its prompts are given
    assert row_key(edit, {}, offline) == row_key(edit, {}, None) == row_key(edit, {})  # edit keys unchanged
    asked.object = "cat"
    assert row_key(asked, {}, offline) != row_key(read_manifest(tmp_path / "m.jsonl")[0], {}, offline)
