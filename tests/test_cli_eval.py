"""``spl batch`` + ``spl eval`` end to end on a PIE-Bench-shaped folder, compare mode, offline message."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from spl_sdk.cli import main
from spl_sdk.metrics.rle import encode_mask

FAST = ["--backbone", "tiny-random-sd15", "--working-size", "64", "--steps", "1", "--iterations", "2"]


def _pie_bench(root: Path, example_image: Image.Image) -> Path:
    """Three entries in PIE-Bench's layout; the third one's mask covers the whole image."""
    photo = example_image.resize((512, 512))
    region = np.zeros((512, 512), dtype=bool)
    region[100:300, 150:350] = True
    entries = {}
    for key, (folder, type_id, words, mask) in {
        "000000000000": ("0_random_140", "0", ("cat", "dog"), region),
        "611000000001": ("6_change_attribute_color_40", "6", ("red", "blue"), region),
        "611000000002": ("6_change_attribute_color_40", "6", ("day", "night"), np.ones_like(region)),
    }.items():
        (root / "annotation_images" / folder).mkdir(parents=True, exist_ok=True)
        photo.save(root / "annotation_images" / folder / f"{key}.jpg")
        entries[key] = {"image_path": f"{folder}/{key}.jpg", "editing_type_id": type_id,
                        "original_prompt": f"a photo of a [{words[0]}]",
                        "editing_prompt": f"a photo of a [{words[1]}]", "editing_instruction": "",
                        "blended_word": f"{words[0]} {words[1]}", "mask": encode_mask(mask)}
    mapping = root / "mapping_file.json"
    mapping.write_text(json.dumps(entries), encoding="utf-8")
    return mapping


@pytest.mark.slow  # three 512 px edits and two evaluations on a CPU
def test_pie_bench_end_to_end_and_compare(tmp_path, example_image):
    mapping = _pie_bench(tmp_path / "PIE-Bench_v1", example_image)
    runner = CliRunner()
    for name, extra in (("spl_on", []), ("spl_off", ["--structure-loss", "none"])):
        run = runner.invoke(main, ["batch", str(mapping), "-o", str(tmp_path / name), *FAST, *extra])
        assert run.exit_code == 0, run.output
    records = [json.loads(line) for line in (tmp_path / "spl_on" / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["000000000000", "611000000001", "611000000002"]
    assert records[1]["target_prompt"] == "a photo of a blue" and records[1]["edit_type"] == "change color"

    single = runner.invoke(main, ["eval", str(tmp_path / "spl_on"), "-o", str(tmp_path / "ev"),
                                  "--networks", "tiny-random"])
    assert single.exit_code == 0, single.output
    rows = list(csv.DictReader((tmp_path / "ev" / "spl_on.csv").open()))
    assert [r["edit_type"] for r in rows] == ["random", "change color", "change color"]
    assert all(r["structure_distance"] and r["clip_whole"] and not r["error"] for r in rows)
    assert rows[0]["psnr"] and rows[2]["psnr"] == "" and rows[2]["lpips"] == ""  # all-covering mask
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())["spl_on"]
    assert summary["change color"]["n"] == 2 and summary["change color"]["n_psnr"] == 1
    assert summary["change color"]["psnr"] == pytest.approx(float(rows[1]["psnr"]))
    assert summary["all"]["n_ssim"] == 2 and summary["all"]["n_structure_distance"] == 3
    assert "| change color | 2 |" in single.output

    both = runner.invoke(main, ["eval", str(tmp_path / "spl_on"), str(tmp_path / "spl_off"), "--compare",
                                "-o", str(tmp_path / "cmp"), "--networks", "tiny-random", "-q"])
    assert both.exit_code == 0, both.output
    md = (tmp_path / "cmp" / "summary.md").read_text()
    assert "## Side by side" in md and "| edit type | spl_on | spl_off |" in md
    assert {p.name for p in (tmp_path / "cmp" / "figures").iterdir()} == {
        f"{m}.png" for m in ("structure_distance", "psnr", "lpips", "mse", "ssim", "clip_whole", "clip_edited")}
    assert Image.open(tmp_path / "cmp" / "figures" / "psnr.png").size[0] > 300
    on = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert set(on) == {"spl_on", "spl_off"} and not math.isnan(on["spl_off"]["all"]["mse"])


def _pairs_manifest(tmp_path: Path, example_image: Image.Image) -> Path:
    example_image.resize((64, 64)).save(tmp_path / "src.png")
    example_image.resize((64, 64)).rotate(180).save(tmp_path / "out.png")
    Image.new("L", (64, 64), 255).save(tmp_path / "all.png")
    manifest = tmp_path / "pairs.csv"
    manifest.write_text("image,edited,target_prompt,eval_mask,edit_type\n"
                        "src.png,out.png,a painting,,style\n"
                        "src.png,missing.png,a painting,all.png,style\n", encoding="utf-8")
    return manifest


def test_a_manifest_of_pairs_is_scored_and_bad_rows_do_not_stop_it(tmp_path, example_image):
    manifest = _pairs_manifest(tmp_path, example_image)
    run = CliRunner().invoke(main, ["eval", str(manifest), "-o", str(tmp_path / "ev"),
                                    "--networks", "tiny-random", "-q"])
    assert run.exit_code == 0, run.output
    rows = list(csv.DictReader((tmp_path / "ev" / "pairs.csv").open()))
    assert rows[0]["structure_distance"] and rows[0]["psnr"] == ""  # no mask: no background score
    assert "does not exist" in rows[1]["error"]


def test_eval_usage_errors_are_one_line(tmp_path, example_image):
    manifest = _pairs_manifest(tmp_path, example_image)
    runner = CliRunner()
    two = runner.invoke(main, ["eval", str(manifest), str(manifest), "-o", str(tmp_path / "e")])
    assert two.exit_code == 1 and "--compare" in two.output and two.output.count("\n") == 1
    one = runner.invoke(main, ["eval", str(manifest), "--compare", "-o", str(tmp_path / "e")])
    assert one.exit_code == 1 and "at least two runs" in one.output
    missing = runner.invoke(main, ["eval", str(tmp_path / "nope"), "-o", str(tmp_path / "e")])
    assert missing.exit_code == 1 and "does not exist" in missing.output


@pytest.mark.slow  # a fresh interpreter imports torch, transformers and open_clip
def test_offline_without_weights_one_sentence_names_them(tmp_path, example_image):
    manifest = _pairs_manifest(tmp_path, example_image)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), TORCH_HOME=str(tmp_path / "torch"))
    proc = subprocess.run([sys.executable, "-m", "spl_sdk.cli", "eval", str(manifest), "-o", str(tmp_path / "e"),
                           "-q"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "facebook/dino-vitb8" in line and "ViT-L-14" in line and "OpenAI" in line


def _two_runs(tmp_path: Path, example_image: Image.Image) -> tuple[Path, Path]:
    """Run A finished all four rows; B is A with one row failed and one never run (lost rows)."""
    example_image.resize((64, 64)).save(tmp_path / "p.png")
    example_image.resize((64, 64)).rotate(90).save(tmp_path / "e.png")
    rows = [{"id": f"r{i}", "image": "p.png", "source_prompt": "a photo", "target_prompt": f"a painting {i}"}
            for i in range(3)] + [{"id": "fix", "task": "refine", "image": "p.png", "edited": "e.png",
                                   "align": "off"}]
    manifest = tmp_path / "rows.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run = CliRunner().invoke(main, ["batch", str(manifest), "-o", str(tmp_path / "A"), *FAST, "-q"])
    assert run.exit_code == 0, run.output
    shutil.copytree(tmp_path / "A", tmp_path / "B")
    journal = tmp_path / "B" / "results.jsonl"
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    kept = []
    for record in records:
        if record["id"] == "r1":
            continue  # never run: a missing row
        if record["id"] == "r2":
            record.update(status="error", error="RuntimeError: out of memory")
        kept.append(record)
    journal.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    return tmp_path / "A", tmp_path / "B"


@pytest.mark.slow  # a 4-row tiny batch, then two tiny-network evaluations
def test_compare_counts_each_runs_rows_and_scores_the_common_ones(tmp_path, example_image):
    a, b = _two_runs(tmp_path, example_image)
    run = CliRunner().invoke(main, ["eval", str(a), str(b), "--compare", "-o", str(tmp_path / "cmp"),
                                    "--networks", "tiny-random", "-q"])
    assert run.exit_code == 0, run.output
    assert "A: 4 of 4 rows finished (0 failed, 0 missing)" in run.output
    assert "B: 2 of 4 rows finished (1 failed, 1 missing); e.g. r2: RuntimeError: out of memory" in run.output
    assert "comparing the 2 rows every run finished" in run.output
    for method in ("A", "B"):  # only the common rows are scored, for both runs
        rows = list(csv.DictReader((tmp_path / "cmp" / f"{method}.csv").open()))
        assert sorted(r["id"] for r in rows) == ["fix", "r0"]
        refine_row = next(r for r in rows if r["id"] == "fix")
        assert refine_row["clip_whole"] == "" and refine_row["structure_distance"]  # no prompt: no CLIP
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert summary["A"]["all"]["n"] == 2 and summary["A"]["all"]["n_clip_whole"] == 1
    md = (tmp_path / "cmp" / "summary.md").read_text()
    assert "B: 2 of 4 rows finished" in md and "No data for PSNR" in md
    figures = {p.name for p in (tmp_path / "cmp" / "figures").iterdir()}
    assert "psnr.png" not in figures and "structure_distance.png" in figures  # no blank charts


def test_compare_without_a_common_row_says_so(tmp_path, example_image):
    from spl_sdk.cli.eval import common_rows
    from spl_sdk.errors import ConfigError
    from spl_sdk.metrics.pairs import Pair, RunPairs

    one = RunPairs([Pair("a", "s", "e", "t")], missing=["b"])
    other = RunPairs([Pair("b", "s", "e", "t")], failed={"a": "boom"})
    with pytest.raises(ConfigError, match="no row was finished by every run .*A 1 of 2 rows finished"):
        common_rows({"A": one, "B": other})
    same, note = common_rows({"A": one, "B": RunPairs([Pair("a", "s", "e", "t")])})
    assert note is None and [p.id for p in same["B"]] == ["a"]


def test_unreachable_hub_fails_at_once_and_names_tiny_random(tmp_path, example_image, monkeypatch):
    from huggingface_hub import constants

    from spl_sdk.metrics import networks

    manifest = _pairs_manifest(tmp_path, example_image)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # offline mode not set: only no network
    assert not networks.hub_reachable()  # conftest points the Hub at a refusing port
    seen, load = [], networks._load_pretrained
    monkeypatch.setattr(networks, "_load_pretrained",
                        lambda *a: seen.append(constants.HF_HUB_OFFLINE) or load(*a))
    run = CliRunner().invoke(main, ["eval", str(manifest), "-o", str(tmp_path / "e"), "-q"])
    assert run.exit_code == 1 and "--networks tiny-random" in run.output, run.output
    assert seen == [True]  # cached weights only: no download retries against an unreachable Hub
    assert constants.HF_HUB_OFFLINE is False  # restored
