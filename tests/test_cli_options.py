"""``--option NAME.FIELD=VALUE`` on the commands, options in the API and in result PNGs, ``spl plugins NAME``."""

from __future__ import annotations

import importlib.util
import json
import re
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from fake_openai import FakeOpenAI, answer
from PIL import Image, ImageDraw, ImageFilter
from pydantic import Field

from spl_sdk import hookimpl
from spl_sdk.cli import main
from spl_sdk.components import ComponentOptions
from spl_sdk.config import EditConfig
from spl_sdk.editor import Editor
from spl_sdk.errors import ConfigError
from spl_sdk.imageio import read_metadata

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--backbone", "tiny-random-sd15", "--working-size", "64", "--steps", "2", "--iterations", "3",
        "--device", "cpu"]


def spl(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def photo(tmp_path: Path, example_image: Image.Image) -> Path:
    path = tmp_path / "photo.png"
    example_image.resize((80, 64)).save(path)
    return path


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


# ------------------------------------------------------------------ spl edit and the API
@pytest.mark.slow
def test_edit_option_is_recorded_and_a_result_png_repeats_the_run(tmp_path: Path, photo: Path) -> None:
    first, again = tmp_path / "first.png", tmp_path / "again.png"
    run = spl("edit", photo, "-s", "a photo of a man", "-t", "a painting of a man", "-o", first, *FAST,
              "--option", "spl.radius=2", "--option", "unified.blend_threshold=0.5")
    assert run.exit_code == 0, run.output
    options = read_metadata(first)["config"]["options"]
    assert options["spl"] == {"radius": 2, "eps": 1e-4, "residual": "centered"}  # every value used, defaults included
    assert options["unified"]["blend_threshold"] == 0.5
    # the PNG alone repeats the run: configuration, options and prompts
    run = spl("edit", photo, "--config", first, "-o", again)
    assert run.exit_code == 0, run.output
    assert np.array_equal(pixels(first), pixels(again))
    assert read_metadata(again)["config"] == read_metadata(first)["config"]


def test_edit_option_errors_are_one_line_before_any_work(tmp_path: Path, photo: Path) -> None:
    base = ["edit", photo, "-s", "a photo", "-t", "a painting", "-o", tmp_path / "o.png", *FAST]
    cases = {
        "spl.radius=0": "'spl.radius' = 0: input should be greater than or equal to 1",
        "spl.radiu=3": "unknown option 'spl.radiu'",
        "spll.radius=3": "unknown component 'spll' in options; did you mean 'spl'?",
        "spl.radius": "must look like NAME.FIELD=VALUE",
    }
    for option, needle in cases.items():
        run = spl(*base, "--option", option)
        assert run.exit_code == 1, option
        assert needle in run.stderr, (option, run.stderr)
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        if "spl.radius" in option and "=" in option:
            assert "radius (int, 1 to 64, default 5), eps (float" in run.stderr
    assert not (tmp_path / "o.png").exists()


def test_a_png_without_metadata_is_refused_as_config(tmp_path: Path, photo: Path) -> None:
    run = spl("edit", photo, "--config", photo, "-o", tmp_path / "o.png", *FAST)
    assert run.exit_code == 1 and "carries no spl-sdk configuration" in run.stderr
    run = spl("edit", photo, "-s", "a photo", "-o", tmp_path / "o.png", *FAST)
    assert run.exit_code == 2 and "Missing option '--target'" in run.output


def test_editor_validates_options_before_loading_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from spl_sdk.plugins import Plugins

    plugins = Plugins(env={})
    tiny = plugins.backbone("tiny-random-sd15")
    monkeypatch.setattr(tiny, "load", classmethod(lambda cls, *a, **k: pytest.fail("model loaded")))
    with pytest.raises(ConfigError, match="'cross-attention.eps' = -1"):
        Editor.from_config(EditConfig(backbone="tiny-random-sd15", options={"cross-attention": {"eps": -1}}),
                           plugins)


def test_edit_api_takes_options(tiny_backbone, plugins, example_image) -> None:
    editor = Editor(tiny_backbone, EditConfig(backbone="tiny-random-sd15", working_size=64, steps=2,
                                              iterations=3), plugins)
    photo = example_image.resize((64, 64))
    args = (photo, "a photo of a man", "a painting of a man")
    result = editor.edit(*args, options={"spl": {"radius": 2}})
    assert result.metadata()["config"]["options"]["spl"]["radius"] == 2
    plain = editor.edit(*args)
    assert plain.config.options["spl"]["radius"] == 5
    assert not np.array_equal(np.asarray(result.image), np.asarray(plain.image))
    with pytest.raises(ConfigError, match="unknown option 'spl.size'"):
        editor.edit(*args, options={"spl": {"size": 2}})


# ------------------------------------------------------------------ the example plug-in's option
def _refine_pair(tmp_path: Path) -> tuple[Path, Path]:
    with Image.open(ROOT / "apps" / "examples" / "woman.png") as img:
        src = img.convert("RGB").resize((64, 48))
    src.save(tmp_path / "src.png")
    src.filter(ImageFilter.GaussianBlur(2)).save(tmp_path / "edit.png")
    return tmp_path / "src.png", tmp_path / "edit.png"


def _loss_before(run: Result) -> float:
    assert run.exit_code == 0, run.output
    return float(re.search(r"loss before: (\S+),", run.stdout).group(1))


def test_example_tv_option_from_the_cli_and_from_a_config_file(tmp_path: Path) -> None:
    if importlib.util.find_spec("spl_example_tv") is None:  # fail, not skip: CI and tox install it
        pytest.fail("the example plug-in is not installed; run 'pip install -e "
                    "plugins/examples/spl-example-tv --no-deps' from the repository root.")
    src, edit = _refine_pair(tmp_path)
    args = ["refine", src, edit, "--structure-loss", "tv", "--iterations", 2]
    anisotropic = _loss_before(spl(*args, "-o", tmp_path / "a.png"))
    isotropic = _loss_before(spl(*args, "-o", tmp_path / "b.png", "--option", "tv.norm=isotropic"))
    assert isotropic != pytest.approx(anisotropic)  # the option reached the loss term
    assert read_metadata(tmp_path / "b.png")["config"]["options"]["tv"]["norm"] == "isotropic"
    command = read_metadata(tmp_path / "b.png")["command"]
    assert "--option tv.norm=isotropic --option tv.eps=1e-06" in command
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("options:\n  tv:\n    norm: isotropic\n")
    from_file = _loss_before(spl(*args, "-o", tmp_path / "c.png", "--config", cfg))
    assert from_file == pytest.approx(isotropic)
    run = spl(*args, "-o", tmp_path / "d.png", "--option", "tv.norm=round")
    assert run.exit_code == 1 and "'tv.norm' = 'round'" in run.stderr and "norm ('anisotropic'" in run.stderr


# ------------------------------------------------------------------ spl harmonize
def _composite(folder: Path, mask_folder: Path) -> tuple[Path, Path]:
    """A composite ``c.png`` in ``folder`` and its mask ``c.png`` in ``mask_folder``."""
    with Image.open(ROOT / "apps" / "examples" / "woman.png") as img:
        image = img.convert("RGB").resize((96, 64))
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).ellipse((24, 16, 72, 48), fill=255)
    for path in (folder, mask_folder):
        path.mkdir(parents=True, exist_ok=True)
    image.save(folder / "c.png")
    mask.save(mask_folder / "c.png")
    return folder / "c.png", mask_folder / "c.png"


REPLY = {"foreground_object": "cat", "foreground": {"brightness": "shaded"},
         "background": {"brightness": "bright"}}


def test_harmonizer_options_and_deprecated_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-harmonize-options-0123")
    composite, mask = _composite(tmp_path / "cs", tmp_path / "ms")
    base = ["harmonize", composite, mask, "--prompts-only", "--harmonizer", "openai"]
    with FakeOpenAI([answer(REPLY)]) as server:
        for extra in (["--option", "openai.model=gpt-opt"], ["--harmonizer-model", "gpt-opt"]):
            run = spl(*base, "--option", f"openai.base_url={server.base_url}", *extra)
            assert run.exit_code == 0, run.output
        key = "sk-given-as-an-option-42"
        out = tmp_path / "batch"
        run = spl("harmonize", tmp_path / "cs", tmp_path / "ms", "-o", out, "--prompts-only",
                  "--harmonizer", "openai", "--option", f"openai.base_url={server.base_url}",
                  "--option", f"openai.api_key={key}", "--option", "openai.model=gpt-opt")
        assert run.exit_code == 0, run.output
        # folders with --prompts-only write a manifest of harmonize rows for spl batch: never the key
        assert key not in run.output and key not in (out / "manifest.jsonl").read_text()
    assert [r["model"] for r in server.requests] == ["gpt-opt"] * 3
    run = spl(*base, "--option", "openai.timeout=0")
    assert run.exit_code == 1 and "'openai.timeout' = 0" in run.stderr and "max_attempts (int" in run.stderr
    # a deprecated flag the chosen harmonizer has no option for is ignored with a note
    run = spl("harmonize", composite, mask, "--prompts-only", "--timeout", 5)
    assert run.exit_code == 0 and "--timeout does not apply to harmonizer 'offline'" in run.stderr
    run = spl("harmonize", composite, mask, "--prompts-only", "--option", "offline.model=x")
    assert run.exit_code == 1 and "harmonizer 'offline' has no options" in run.stderr


def test_harmonize_help_marks_the_old_flags_deprecated() -> None:
    text = " ".join(spl("harmonize", "--help").output.replace("│", " ").split())  # rich panels
    assert "--harmonizer-model" not in text  # hidden: --option openai.model=... replaces it
    for flag, field in (("--timeout", "timeout"),
                        ("--max-attempts", "max_attempts"), ("--api-key", "api_key")):
        assert re.search(re.escape(flag) + r".*?\(deprecated: use --option openai\." + field + r"=\.\.\.\)",
                         text), flag
    assert "--option NAME.FIELD=VALUE" in text


# ------------------------------------------------------------------ spl plugins
def test_plugins_json_carries_options_as_json_schema() -> None:
    rows = json.loads(spl("plugins", "--json").stdout)
    by_name = {(r["kind"], r["name"]): r for r in rows}
    schema = by_name[("loss", "spl")]["options"]
    assert schema["properties"]["radius"] == {
        "default": 5, "description": schema["properties"]["radius"]["description"],
        "maximum": 64, "minimum": 1, "title": "Radius", "type": "integer"}
    assert schema["additionalProperties"] is False
    assert by_name[("loss", "l1")]["options"]["properties"] == {}
    assert by_name[("loss", "cpl")]["options"]["properties"]["chroma"]["enum"] == ["bt601", "kornia"]
    assert by_name[("mask-extractor", "cross-attention")]["options"]["properties"]["eps"]["default"] == 0.01


def test_plugins_name_prints_the_component_and_its_options() -> None:
    run = spl("plugins", "cross-attention")
    assert run.exit_code == 0, run.output
    text = run.stdout
    assert text.startswith("cross-attention: mask extractor from plug-in 'masks' (package spl-sdk ")
    assert "--option cross-attention.FIELD=VALUE" in text
    assert re.search(r"^  eps  \(float, default 0\.01, > 0, <= 1\)$", text, flags=re.M)
    assert "1e-3" in text and "docs/benchmarks/masks.md" in text
    assert "radius_step  (int, default 1, 0 to 16)" in text
    assert "No options." in spl("plugins", "loss/l1").stdout
    assert '--profile paper sets chroma="kornia" unless you give it.' in spl("plugins", "cpl").stdout
    single = json.loads(spl("plugins", "loss/spl", "--json").stdout)
    assert single["name"] == "spl" and "radius" in single["options"]["properties"]
    run = spl("plugins", "spll")
    assert run.exit_code == 1 and "did you mean 'spl'?" in run.stderr


def test_backbone_options_are_fixed_at_load_and_edit_options_merge(tiny_backbone, plugins,
                                                                   example_image) -> None:
    tiny = plugins.backbone("tiny-random-sd15")

    class Knobbed(tiny):  # type: ignore[misc, valid-type]
        """tiny-random-sd15 with an option (only recorded: it shows how backbone options travel)."""

        name = "tiny-knobbed"

        class Options(ComponentOptions):
            knob: int = Field(1, ge=0, le=9, description="A setting fixed when the model loads.")

        @classmethod
        def load(cls, model=None, *, device="auto", dtype="auto", cpu_offload=False, options=None):
            assert options is not None and options.knob == 7  # load() receives the validated options
            return tiny_backbone

    @hookimpl
    def spl_register_backbones(register):
        register(Knobbed)

    plugins.register(types.SimpleNamespace(spl_register_backbones=spl_register_backbones), name="knobbed")
    cfg = EditConfig(backbone="tiny-knobbed", working_size=64, steps=1, iterations=1, post_process=False,
                     options={"tiny-knobbed": {"knob": 7}})
    editor = Editor.from_config(cfg, plugins)
    try:
        assert editor.backbone.options.knob == 7
        photo = example_image.resize((64, 64))
        # edit options merge over the editor's: the backbone keeps its knob
        result = editor.edit(photo, "a photo", "a painting", options={"spl": {"radius": 2}})
        assert result.config.options["tiny-knobbed"] == {"knob": 7}
        assert result.config.options["spl"]["radius"] == 2
        with pytest.raises(ConfigError, match="options of backbone 'tiny-knobbed' cannot change per edit"):
            editor.edit(photo, "a photo", "a painting", options={"tiny-knobbed": {"knob": 3}})
    finally:
        del tiny_backbone.options  # the session's shared backbone goes back as it was
