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


def records(out: Path) -> dict[str, dict]:
    """The batch's results by row id (OUT/results.jsonl, one record per composite)."""
    return {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


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


def test_folders_run_as_batch_rows_that_resume(tmp_path):
    # the folder mode is the batch runner's harmonize task: its layout, resume rule and summary
    comps, masks, out = tmp_path / "c", tmp_path / "m", tmp_path / "out"
    make_pair(comps, masks, "a", "woman.png", "cats.png", size=(64, 48))
    make_pair(comps, masks, "b", "cats.png", "marshmallow.jpg", mask_suffix=".jpg", size=(64, 48))  # by stem
    make_pair(comps, masks, "c", "old_man.png", "woman.png", mask=False, size=(64, 48))
    args = ["harmonize", str(comps), str(masks), "-o", str(out), *FAST]
    run = CliRunner().invoke(main, args)
    assert run.exit_code == 1, run.output
    assert "2 ok, 1 failed, 0 skipped (already done)" in run.stderr
    recs = records(out)
    assert recs["a"]["status"] == recs["b"]["status"] == "ok" and recs["a"]["task"] == "harmonize"
    assert recs["b"]["mask"] == str((masks / "b.jpg").resolve())
    assert recs["a"]["source_prompt"].endswith("object") and recs["a"]["harmonizer"] == "offline"
    assert recs["c"]["status"] == "error"
    assert recs["c"]["error"] == "no mask named 'c.*' for composite 'c.png'; add one to the mask folder."
    assert sorted(p.name for p in (out / "images").iterdir()) == ["a.png", "b.png"]
    meta = read_metadata(out / "images" / "a.png")
    assert meta["command"] == "spl batch" and meta["row_key"] == recs["a"]["key"]
    assert meta["harmonization"]["source_prompt"] == meta["source_prompt"] == recs["a"]["source_prompt"]
    assert (meta["config"]["color_loss"], meta["config"]["color_area"]) == ("cpl", "masked")
    stamp = (out / "images" / "a.png").stat().st_mtime_ns

    again = CliRunner().invoke(main, args)  # resumes: only c is tried again
    assert again.exit_code == 1 and "0 ok, 1 failed, 2 skipped (already done)" in again.stderr
    assert (out / "images" / "a.png").stat().st_mtime_ns == stamp
    Image.open(masks / "a.png").save(masks / "c.png")
    fixed = CliRunner().invoke(main, args)
    assert fixed.exit_code == 0, fixed.output
    assert "1 ok, 0 failed, 2 skipped (already done)" in fixed.stderr
    assert records(out)["c"]["status"] == "ok"
    # another object word is another row (the key holds it): every composite is redone
    other = CliRunner().invoke(main, [*args, "--object", "cat"])
    assert other.exit_code == 0 and "3 ok, 0 failed, 0 skipped" in other.stderr
    assert records(out)["a"]["target_prompt"].endswith(" cat")


def test_prompts_only_with_folders_writes_a_manifest_for_spl_batch(tmp_path):
    comps, masks, out = tmp_path / "c", tmp_path / "m", tmp_path / "out"
    make_pair(comps, masks, "a", "woman.png", "cats.png", size=(64, 48))
    make_pair(comps, masks, "c", "old_man.png", "woman.png", mask=False, size=(64, 48))
    args = ["harmonize", str(comps), str(masks), "-o", str(out), "--prompts-only", "--object", "cat"]
    run = CliRunner().invoke(main, args)
    assert run.exit_code == 1, run.output  # c has no mask: reported, left out
    assert "no mask named 'c.*'" in run.stderr and "spl batch" in run.stderr
    (row,) = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert row["task"] == "harmonize" and row["id"] == "a" and row["object"] == "cat"
    assert row["target_prompt"].endswith(" cat") and row["mask"] == str((masks / "a.png").resolve())
    assert not (out / "images").exists()  # no edit ran
    # the user reviews the prompts, then runs the manifest: the prompts are used as written
    row["target_prompt"] = "bright cat"
    (out / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1 and "already exists" in refused.stderr and "--force" in refused.stderr
    assert json.loads((out / "manifest.jsonl").read_text())["target_prompt"] == "bright cat"
    run = CliRunner().invoke(main, ["batch", str(out / "manifest.jsonl"), "-o", str(out), *FAST])
    assert run.exit_code == 0, run.output
    meta = read_metadata(out / "images" / "a.png")
    assert meta["target_prompt"] == "bright cat" and meta["harmonization"] is None  # written by hand
    assert (meta["config"]["structure_area"], meta["config"]["color_area"]) == ("whole", "masked")
    assert CliRunner().invoke(main, [*args, "--force"]).exit_code == 1  # --force replaces it
    assert json.loads((out / "manifest.jsonl").read_text())["target_prompt"] != "bright cat"


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


def test_openai_batch_never_writes_the_key(tmp_path, monkeypatch):
    # the key reaches the worker in memory (no OPENAI_API_KEY here), never a file of the batch
    comps, masks, out = tmp_path / "c", tmp_path / "m", tmp_path / "out"
    make_pair(comps, masks, "a", "woman.png", "cats.png", size=(64, 48))
    make_pair(comps, masks, "b", "cats.png", "woman.png", size=(64, 48))
    with FakeOpenAI([answer(REPLY)]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        run = CliRunner().invoke(main, ["harmonize", str(comps), str(masks), "-o", str(out),
                                        "--harmonizer", "openai", "--harmonizer-model", "gpt-test",
                                        "--option", f"openai.api_key={KEY}", "--json", *FAST])
    assert run.exit_code == 0, run.output
    assert [r["model"] for r in server.requests] == ["gpt-test", "gpt-test"]
    recs = records(out)
    assert [r["target_prompt"] for r in recs.values()] == ["bright warm cat"] * 2
    assert recs["a"]["harmonizer_options"]["model"] == "gpt-test" and "api_key" not in recs["a"]["harmonizer_options"]
    assert json.loads((out / "batch.json").read_text())["harmonizer"]["options"]["model"] == "gpt-test"
    written = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"batch.json", "results.jsonl", "results.parquet", "a.png", "b.png"}
    for path in written:
        assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in run.output
    from spl_sdk.harmonizing import HarmonizerChoice

    assert KEY not in repr(HarmonizerChoice("openai", {"openai": {"api_key": KEY}}))  # Ray may log it
    # another harmonizer model is another row (its public options are in the key)
    with FakeOpenAI([answer(REPLY)]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        again = CliRunner().invoke(main, ["harmonize", str(comps), str(masks), "-o", str(out),
                                          "--harmonizer", "openai", "--option", "openai.model=gpt-other",
                                          "--option", f"openai.api_key={KEY}", *FAST])
    assert again.exit_code == 0 and "2 ok, 0 failed, 0 skipped" in again.stderr


def test_a_harmonizer_error_quoting_the_key_is_scrubbed(tmp_path, monkeypatch):
    comps, masks, out = tmp_path / "c", tmp_path / "m", tmp_path / "out"
    make_pair(comps, masks, "a", "woman.png", "cats.png", size=(64, 48))
    from spl_harmonizers.offline import OfflineHarmonizer

    def leak(self, *args, **kwargs):
        raise RuntimeError(f"the server said: bad key {KEY}")

    monkeypatch.setenv("SPL_TEST_API_KEY", KEY)  # a *_API_KEY variable: its value is scrubbed
    monkeypatch.setattr(OfflineHarmonizer, "describe", leak)
    run = CliRunner().invoke(main, ["harmonize", str(comps), str(masks), "-o", str(out), *FAST])
    assert run.exit_code == 1
    assert records(out)["a"]["error"] == "RuntimeError: the server said: bad key ***"
    assert KEY not in run.output and KEY not in (out / "results.jsonl").read_text()


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


def test_a_folder_run_stopped_by_sigterm_says_how_to_resume(tmp_path, monkeypatch):
    import signal

    from spl_sdk.cli.signals import Terminated

    def stopped(*_a, **_k):
        raise Terminated(signal.SIGTERM)

    comps, masks, out = tmp_path / "c", tmp_path / "m", tmp_path / "out"
    make_pair(comps, masks, "a", "woman.png", "cats.png")
    monkeypatch.setattr("spl_sdk.jobs.runner.run_batch", stopped)
    run = CliRunner().invoke(main, ["harmonize", str(comps), str(masks), "-o", str(out), *FAST])
    assert run.exit_code == 143
    assert run.stderr.startswith("Stopped by SIGTERM; the rows finished so far are recorded in ")
    assert "run the same command to resume" in run.stderr
