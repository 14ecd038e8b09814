"""Every ``spl`` command line in README.md and docs/*.md runs as written, on tiny backbones.

Each doc's ```bash blocks are run in order in one folder that holds the files they
name (small copies of a bundled photo, a two-row manifest, a PIE-Bench-shaped
mapping). Substituted so that they run offline on a CPU in seconds: a real model by
the tiny random backbone of its family, few steps at 64 px, CUDA by the CPU, the Ray
engine by the in-process one (the Ray engine is tested in test_batch_ray.py), remote
folders by local ones, and the metric networks by tiny random ones.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from spl_sdk.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TINY = {"flux-dev": "tiny-random-flux", "flux-schnell": "tiny-random-flux", "sd35-medium": "tiny-random-sd3",
        "flux-kontext-dev": "tiny-random-kontext", "lcm-sdxl": "tiny-random-sdxl",
        "lcm-lora-sdxl": "tiny-random-sdxl", "qwen-image-edit": "tiny-random-qwen-edit",
        "flux2-klein": "tiny-random-klein", "random-sdxl": "tiny-random-sdxl"}
FAST = {"edit": ["--working-size", "64", "--steps", "1", "--iterations", "2", "--force"],
        "batch": ["--working-size", "64", "--steps", "1", "--iterations", "2"],
        "refine": ["--iterations", "2", "--force"], "eval": ["--networks", "tiny-random", "--force"]}
RAY = {"--engine": 1, "--concurrency": 1, "--num-gpus-per-worker": 1, "--ray-address": 1}
# components only the docs' own worked examples register (docs/plugins.md, tested in test_docs.py)
DOC_ONLY = ("edge-l1",)


def commands(doc: Path) -> list[str]:
    """The ``spl`` lines of ``doc``'s shell blocks, continuation lines joined, comments dropped."""
    found = []
    for block in re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = re.split(r"\s#\s", line)[0].strip()
            if line.startswith("spl "):
                found.append(line)
    return found


def runnable(line: str) -> list[str]:
    """The command's arguments with the substitutions of the module docstring."""
    args = [("a photo" if a == "..." else a) for a in shlex.split(line)[1:]]
    out: list[str] = []
    skip = 0
    for i, arg in enumerate(args):
        if skip:
            skip -= 1
            continue
        if arg in RAY:
            skip = RAY[arg]
            continue
        if i and args[i - 1] == "--backbone":
            arg = TINY.get(arg, arg)
        if i and args[i - 1] == "--device":
            arg = "cpu"
        arg = arg.replace("/mnt/nfs/", "").replace("~/", "")
        out.append(arg)
    if out[0] in ("edit", "batch") and "--backbone" not in out:
        out += ["--backbone", "tiny-random-sd15"]
    if "--cpu-offload" in out:
        out.remove("--cpu-offload")  # needs accelerate and a GPU to mean anything
    return out + FAST.get(out[0], [])


def _workspace(folder: Path) -> None:
    """The files the docs' commands name, small."""
    photo = Image.open(ROOT / "apps" / "examples" / "old_man.png").convert("RGB").resize((96, 96))
    shutil.copytree(ROOT / "apps" / "examples", folder / "apps" / "examples")
    for name in ("photo.png", "photo.jpg", "SOURCE.png"):
        photo.save(folder / name)
    shifted = photo.transform(photo.size, Image.Transform.AFFINE, (1, 0, 2, 0, 1, 1))
    for name in ("edit.png", "kontext_edit.png", "EDITED.png"):
        shifted.save(folder / name)
    rows = [{"id": i, "image": "photo.png", "source_prompt": "a photo of a man",
             "target_prompt": f"a {style} of a man"} for i, style in (("a", "painting"), ("b", "drawing"))]
    (folder / "edits.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    pie = folder / "data" / "PIE-Bench_v1"
    (pie / "annotation_images" / "0_random_140").mkdir(parents=True)
    photo.save(pie / "annotation_images" / "0_random_140" / "000000000000.jpg")
    (pie / "mapping_file.json").write_text(json.dumps({"000000000000": {
        "image_path": "0_random_140/000000000000.jpg", "editing_type_id": "0",
        "original_prompt": "a photo of a [man]", "editing_prompt": "a photo of a [woman]",
        "editing_instruction": "", "blended_word": "man woman", "mask": [0, 96 * 96]}}), encoding="utf-8")


@pytest.mark.slow  # about twenty tiny edits, refines, batches and evaluations
@pytest.mark.parametrize("doc", [d for d in DOCS if commands(d)], ids=lambda d: d.name)
def test_every_documented_command_runs(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    for line in commands(doc):
        if any(name in line for name in DOC_ONLY):
            continue
        args = runnable(line)
        run = CliRunner().invoke(main, args)
        assert run.exit_code == 0, f"{doc.name}: {line}\n  ran: spl {shlex.join(args)}\n{run.output}"
        if "-o" in args:
            assert (tmp_path / args[args.index("-o") + 1]).exists(), line


def test_the_docs_have_commands_and_each_is_substituted_sensibly() -> None:
    lines = [line for doc in DOCS for line in commands(doc)]
    assert len(lines) >= 20
    assert runnable('spl edit photo.jpg -s ... -t ... --backbone flux-dev --device cuda -o o.png')[:9] == [
        "edit", "photo.jpg", "-s", "a photo", "-t", "a photo", "--backbone", "tiny-random-flux", "--device"]
    assert "--engine" not in runnable("spl batch m.jsonl -o r --engine ray --concurrency 4")
