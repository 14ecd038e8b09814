"""``spl harmonize``: prompts only, batches that resume, and the full edit on the tiny backbone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_openai import FakeOpenAI, answer
from PIL import Image, ImageDraw, ImageEnhance

from spl_sdk.cli import main
from spl_sdk.cli.harmonize import _edit_config
from spl_sdk.imageio import read_metadata

EXAMPLES = Path(__file__).resolve().parents[1] / "apps" / "examples"
FAST = ["--backbone", "tiny-random-sd15", "--working-size", "128", "--steps", "2", "--iterations", "3",
        "--device", "cpu"]
KEY = "sk-test-cli-9d2f61b0a8c4"


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def make_pair(folder: Path, mask_folder: Path, name: str, bg: str, fg: str, *, mask: bool = True,
              mask_suffix: str = ".png", size: tuple[int, int] = (160, 120)) -> Path:
    """A dark object from ``fg`` pasted on ``bg``; writes the composite and (optionally) its mask."""
    background = Image.open(EXAMPLES / bg).convert("RGB").resize(size)
    obj = ImageEnhance.Brightness(Image.open(EXAMPLES / fg).convert("RGB").resize(size)).enhance(0.4)
    fg_mask = Image.new("L", size, 0)
    w, h = size
    ImageDraw.Draw(fg_mask).ellipse((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=255)
    folder.mkdir(parents=True, exist_ok=True)
    mask_folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    Image.composite(obj, background, fg_mask).save(path)
    if mask:
        fg_mask.save(mask_folder / f"{name}{mask_suffix}")
    return path


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "harmonize.jsonl").read_text().splitlines()]


def test_prompts_only_json_with_offline(tmp_path):
    composite = make_pair(tmp_path, tmp_path / "m", "cat", "woman.png", "cats.png")
    run = CliRunner().invoke(main, ["harmonize", str(composite), str(tmp_path / "m" / "cat.png"),
                                    "--prompts-only", "--json", "--object", "cat"])
    assert run.exit_code == 0, run.output
    data = json.loads(run.stdout)
    assert data["foreground_object"] == "cat"
    assert data["source_prompt"] == " ".join([*data["foreground_words"], "cat"])
    assert data["target_prompt"] == " ".join([*data["background_words"], "cat"])
    assert data["source_prompt"] != data["target_prompt"]


def test_prompts_only_prints_both_prompts(tmp_path):
    composite = make_pair(tmp_path, tmp_path / "m", "cat", "woman.png", "cats.png")
    run = CliRunner().invoke(main, ["harmonize", str(composite), str(tmp_path / "m" / "cat.png"),
                                    "--prompts-only"])
    assert run.exit_code == 0, run.output
    lines = run.stdout.splitlines()
    assert lines[0].startswith("source prompt: ") and lines[0].endswith(" object")
    assert lines[1].startswith("target prompt: ")


def test_batch_records_failures_and_resumes(tmp_path):
    comps, masks, out = tmp_path / "c", tmp_path / "m", tmp_path / "out"
    make_pair(comps, masks, "a", "woman.png", "cats.png")
    make_pair(comps, masks, "b", "cats.png", "marshmallow.jpg", mask_suffix=".jpg")  # matched by stem
    make_pair(comps, masks, "c", "old_man.png", "woman.png", mask=False)
    args = ["harmonize", str(comps), str(masks), "-o", str(out), "--prompts-only"]
    run = CliRunner().invoke(main, args)
    assert run.exit_code == 1, run.output
    assert "2 ok, 1 failed, 0 skipped" in run.stderr
    recs = {r["file"]: r for r in records(out)}
    assert recs["a.png"]["status"] == recs["b.png"]["status"] == "ok"
    assert recs["b.png"]["mask"] == "b.jpg" and recs["a.png"]["source_prompt"].endswith("object")
    assert recs["c.png"]["status"] == "error" and "no mask named 'c.*'" in recs["c.png"]["error"]
    assert all(r["seconds"] >= 0 and r["harmonizer"] == "offline" for r in recs.values())

    again = CliRunner().invoke(main, args)  # resumes: only c is tried again
    assert again.exit_code == 1 and "0 ok, 1 failed, 2 skipped" in again.stderr
    assert [r["file"] for r in records(out)] == ["a.png", "b.png", "c.png", "c.png"]

    Image.open(masks / "a.png").save(masks / "c.png")
    fixed = CliRunner().invoke(main, args)
    assert fixed.exit_code == 0, fixed.output
    assert "1 ok, 0 failed, 2 skipped" in fixed.stderr
    assert records(out)[-1]["status"] == "ok"


def test_batch_resume_survives_a_line_cut_off_by_a_crash(tmp_path):
    comps, masks, out = tmp_path / "c", tmp_path / "m", tmp_path / "out"
    make_pair(comps, masks, "a", "woman.png", "cats.png")
    make_pair(comps, masks, "b", "cats.png", "woman.png")
    out.mkdir()
    (out / "harmonize.jsonl").write_text('{"file": "a.png", "status": "ok"}\n{"file": "b.png", "sta')
    run = CliRunner().invoke(main, ["harmonize", str(comps), str(masks), "-o", str(out), "--prompts-only"])
    assert run.exit_code == 0 and "1 ok, 0 failed, 1 skipped" in run.stderr
    assert records_tail(out)["file"] == "b.png"


def records_tail(out: Path) -> dict:
    return json.loads((out / "harmonize.jsonl").read_text().splitlines()[-1])


@pytest.mark.parametrize(("args", "message"), [
    (["--prompts-only", "--harmonizer", "nope"], "unknown harmonizer 'nope'; available: offline, openai"),
    (["--prompts-only", "--harmonizer", "openai"], "set the OPENAI_API_KEY environment variable"),
    ([], "pass -o OUT"),
])
def test_user_errors_are_one_line(tmp_path, args, message):
    composite = make_pair(tmp_path, tmp_path / "m", "cat", "woman.png", "cats.png")
    run = CliRunner().invoke(main, ["harmonize", str(composite), str(tmp_path / "m" / "cat.png"), *args])
    assert run.exit_code == 1
    assert message in run.stderr and "Traceback" not in run.output


def test_file_and_folder_cannot_be_mixed(tmp_path):
    composite = make_pair(tmp_path, tmp_path / "m", "cat", "woman.png", "cats.png")
    run = CliRunner().invoke(main, ["harmonize", str(composite), str(tmp_path / "m"), "--prompts-only"])
    assert run.exit_code == 1 and "must both be files or both be folders" in run.stderr


def test_edit_config_keeps_design_section_6_losses(tmp_path):
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text("color_loss: none\nstructure_area: masked\ncolor_weight: 500\nsteps: 4\n")
    cfg = _edit_config(cfg_file, {"seed": 3, "model": "some/weights"})
    assert (cfg.structure_loss, cfg.structure_area) == ("spl", "whole")
    assert (cfg.color_loss, cfg.color_area) == ("cpl", "masked")
    assert cfg.color_weight == 500 and cfg.steps == 4 and cfg.seed == 3 and cfg.model == "some/weights"


class StubEditor:
    """Stands in for the loaded editor: records each call and returns the composite unchanged."""

    calls: list[dict] = []

    def __init__(self, cfg):
        self.cfg = cfg

    @classmethod
    def from_config(cls, cfg, plugins=None):
        return cls(cfg)

    def edit(self, image, source_prompt, target_prompt, *, mask=None, callback=None, **overrides):
        from spl_sdk.editor import EditResult

        self.calls.append({"image": image, "source": source_prompt, "target": target_prompt, "mask": mask})
        return EditResult(image=image, config=self.cfg, source_prompt=source_prompt,
                          target_prompt=target_prompt, mask=mask)


def test_batch_edit_passes_the_background_mask_and_writes_each_result(tmp_path, monkeypatch):
    import numpy as np

    import spl_sdk.editor

    monkeypatch.setattr(spl_sdk.editor, "Editor", StubEditor)
    StubEditor.calls = []
    comps, masks, out = tmp_path / "c", tmp_path / "m", tmp_path / "out"
    make_pair(comps, masks, "a", "woman.png", "cats.png")
    make_pair(comps, masks, "b", "cats.png", "woman.png", mask=False)
    run = CliRunner().invoke(main, ["harmonize", str(comps), str(masks), "-o", str(out), "--object", "cat",
                                    "--backbone", "tiny-random-sd15", "--steps", "2"])
    assert run.exit_code == 1, run.output
    (call,) = StubEditor.calls
    fg = np.asarray(Image.open(masks / "a.png").convert("L"))
    assert np.array_equal(np.asarray(call["mask"]), 255 - fg)  # CPL on the background (docs/method.md section 6)
    recs = {r["file"]: r for r in records(out)}
    assert recs["a.png"]["output"] == str(out / "a.png") and recs["b.png"]["output"] is None
    meta = read_metadata(out / "a.png")
    assert meta["command"] == "spl harmonize" and meta["harmonizer"] == "offline"
    assert meta["target_prompt"] == recs["a.png"]["target_prompt"] == call["target"]
    assert meta["config"]["steps"] == 2 and meta["config"]["color_area"] == "masked"
    assert not (out / "b.png").exists()


def test_openai_batch_never_records_the_key(tmp_path, monkeypatch):
    comps, masks, out = tmp_path / "c", tmp_path / "m", tmp_path / "out"
    make_pair(comps, masks, "a", "woman.png", "cats.png")
    make_pair(comps, masks, "b", "cats.png", "woman.png")
    with FakeOpenAI([answer(REPLY)]) as server:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        run = CliRunner().invoke(main, ["harmonize", str(comps), str(masks), "-o", str(out),
                                        "--harmonizer", "openai", "--harmonizer-model", "gpt-test",
                                        "--prompts-only", "--json"])
    assert run.exit_code == 0, run.output
    assert [r["model"] for r in server.requests] == ["gpt-test", "gpt-test"]
    assert [r["target_prompt"] for r in records(out)] == ["bright warm cat"] * 2
    assert KEY not in (out / "harmonize.jsonl").read_text() and KEY not in run.output


REPLY = {"foreground_object": "cat", "foreground": {"brightness": "shaded", "tone": "earthy"},
         "background": {"brightness": "bright", "temperature": "warm"}}


@pytest.mark.slow
def test_full_edit_on_tiny_backbone_saves_prompts_but_never_the_key(tmp_path, monkeypatch):
    composite = make_pair(tmp_path, tmp_path / "m", "cat", "woman.png", "cats.png")
    out = tmp_path / "out.png"
    args = ["harmonize", str(composite), str(tmp_path / "m" / "cat.png"), "-o", str(out),
            "--harmonizer", "openai", *FAST]
    with FakeOpenAI([answer(REPLY)]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        run = CliRunner().invoke(main, [*args, "--api-key", KEY])
    assert run.exit_code == 0, run.output
    assert "target prompt: bright warm cat" in run.stdout
    assert Image.open(out).size == (160, 120)
    meta = read_metadata(out)
    assert meta["source_prompt"] == "shaded earthy cat" and meta["target_prompt"] == "bright warm cat"
    assert meta["harmonization"]["background_words"] == ["bright", "warm"]
    cfg = meta["config"]
    assert (cfg["structure_loss"], cfg["structure_area"]) == ("spl", "whole")
    assert (cfg["color_loss"], cfg["color_area"]) == ("cpl", "masked")
    assert KEY not in json.dumps(meta) and KEY.encode() not in out.read_bytes()
    assert KEY not in run.output
    again = CliRunner().invoke(main, [*args, "--api-key", KEY])  # refused before any work
    assert again.exit_code == 1 and "--force" in again.stderr
