"""The edit-method contract: selection by name, the request a method gets, compatibility, cleanup."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import spl_attention
import spl_backbones
import spl_losses
import spl_masks
import spl_methods
import spl_postprocess
from spl_backbones.tiny import TinyRandom
from spl_methods.infedit import LAYOUT, InfEdit
from spl_sdk import hookimpl
from spl_sdk.components import Backbone, BatchLayout, EditMethod, EditOutput, EditRequest
from spl_sdk.config import EditConfig
from spl_sdk.editor import Editor
from spl_sdk.errors import Canceled, IncompatibleError
from spl_sdk.plugins import Plugins

FAST = dict(backbone="tiny-random-sd15", working_size=96, steps=2, iterations=2)
DOC = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")


class Recorder(EditMethod):
    """Keeps the request it receives and returns the source latent (a stand-in method)."""

    name = "recorder"
    requires: ClassVar[frozenset[str]] = frozenset({"epsilon"})
    seen: ClassVar[list[EditRequest]] = []

    def edit(self, request: EditRequest) -> EditOutput:
        """Record, step once per requested step, return z0."""
        Recorder.seen.append(request)
        with self.controlling(request.controller, BatchLayout(("source", "target"), guided=False)):
            for i in range(request.steps):
                request.on_step(i, request.steps, request.z0)
        return EditOutput(latent=request.z0)


def fresh_plugins(*extra: object) -> Plugins:
    """A manager without entry points: the built-ins an edit needs plus ``extra`` inline modules."""
    plugins = Plugins(load_entrypoints=False)
    for module in (spl_backbones, spl_attention, spl_losses, spl_masks, spl_postprocess, spl_methods):
        plugins.register(module, name=module.__name__)
    for i, module in enumerate(extra):
        plugins.register(module, name=f"inline-{i}")
    return plugins


def inline(*classes: type) -> types.ModuleType:
    """A plug-in module registering ``classes`` as edit methods."""
    module = types.ModuleType("inline_methods")

    @hookimpl
    def spl_register_edit_methods(register):
        for cls in classes:
            register(cls)

    module.spl_register_edit_methods = spl_register_edit_methods
    return module


@pytest.fixture
def photo(example_image) -> Image.Image:
    return example_image.resize((96, 64))


def test_infedit_is_the_built_in_method(plugins):
    assert plugins.edit_method("infedit") is InfEdit
    assert InfEdit.requires == {"epsilon", "alphas-cumprod"}
    assert any(r["kind"] == "method" and r["name"] == "infedit" for r in plugins.listing())
    assert LAYOUT.size == 6 and LAYOUT.rows("target", "cond") == 4 and LAYOUT.rows("mutual", "uncond") == 2


def test_a_third_party_method_is_selected_by_name_and_receives_the_request(tiny_backbone, photo):
    Recorder.seen.clear()
    editor = Editor(tiny_backbone, EditConfig(**FAST, method="recorder"), fresh_plugins(inline(Recorder)))
    steps: list[int] = []
    result = editor.edit(photo, "a photo of a man", "a painting of a man", seed=7, opt_start=0.5,
                         source_guidance=1.25,
                         callback=lambda done, total, _p: steps.append(done))
    (request,) = Recorder.seen
    assert (request.source_prompt, request.target_prompt) == ("a photo of a man", "a painting of a man")
    assert request.backbone is tiny_backbone and request.z0.shape == (1, 4, 64 // 8, 96 // 8)
    # the LCM schedule's original_steps is the backbone's own option now, not part of the request
    assert (request.steps, request.seed, request.opt_start, request.original_steps) == (2, 7, 0.5, None)
    assert (request.source_guidance, request.target_guidance) == (1.25, 2.0)
    assert callable(request.inject) and request.controller.layout.branches == ("source", "target")
    assert steps[:2] == [1, 2] and result.image.size == photo.size
    assert result.config.method == "recorder"
    # the same through EditConfig at construction and as a per-edit override
    other = Editor(tiny_backbone, EditConfig(**FAST), fresh_plugins(inline(Recorder)))
    assert other.edit(photo, "a photo", "a painting", method="recorder").config.method == "recorder"
    assert len(Recorder.seen) == 2


def test_spl_edit_takes_method_from_the_command_line(tmp_path, monkeypatch, example_image):
    import spl_sdk.editor

    Recorder.seen.clear()
    monkeypatch.setattr(spl_sdk.editor, "get_plugins", lambda: fresh_plugins(inline(Recorder)))
    photo, out = tmp_path / "p.png", tmp_path / "o.png"
    example_image.resize((64, 64)).save(photo)
    from spl_sdk.cli import main

    run = CliRunner().invoke(main, ["edit", str(photo), "-s", "a photo", "-t", "a painting", "-o", str(out),
                                    "--backbone", "tiny-random-sd15", "--steps", "2", "--iterations", "2",
                                    "--method", "recorder"])
    assert run.exit_code == 0, run.output
    assert len(Recorder.seen) == 1 and out.exists()
    help_text = CliRunner().invoke(main, ["edit", "--help"]).output
    assert "--method" in help_text


def test_the_documented_sdedit_example_edits_through_the_editor(tiny_backbone, photo):
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", DOC, flags=re.S) if "class SDEdit" in b]
    module = types.ModuleType("doc_sdedit")
    exec(compile(code, "docs/plugins.md SDEdit", "exec"), module.__dict__)
    editor = Editor(tiny_backbone, EditConfig(**{**FAST, "steps": 4}, method="sdedit"), fresh_plugins(module))
    seen: list[tuple[int, int]] = []
    result = editor.edit(photo, "a photo", "a painting", opt_start=0.5, post_process=False,
                         callback=lambda done, total, _p: seen.append((done, total)))
    assert result.image.size == photo.size and result.config.method == "sdedit"
    assert seen == [(1, 2), (2, 2)]  # the two steps after the half-way noise: the total follows the method


class FlowOnly(Backbone):
    """A backbone that must never be used: every model call fails the test."""

    name = "flow-only"
    capabilities: ClassVar[frozenset[str]] = frozenset({"flow", "attention-processors"})
    default_method = "flowedit"

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.device = torch.device("cpu")

    @classmethod
    def load(cls, model=None, *, device="auto", dtype="auto", cpu_offload=False):
        raise AssertionError("not loaded")

    def encode_prompts(self, prompts):
        raise AssertionError("work started before the compatibility check")

    predict = timesteps = decode_latents = encode_image = encode_prompts


def test_an_unfit_backbone_is_refused_before_any_work_naming_both(tiny_backbone, plugins, photo):
    editor = Editor(FlowOnly(tiny_backbone.tokenizer), EditConfig(**FAST, method="infedit"), plugins)
    with pytest.raises(IncompatibleError) as err:
        editor.edit(photo, "a photo", "a painting")
    message = str(err.value)
    assert "edit method 'infedit'" in message and "backbone 'flow-only'" in message
    assert "alphas-cumprod, epsilon" in message and "--method flowedit" in message
    assert "\n" not in message


def test_a_controller_needs_are_checked_too(tiny_backbone, photo):
    class NoCrossAttention(FlowOnly):
        capabilities: ClassVar[frozenset[str]] = frozenset({"epsilon", "attention-processors"})

    class EpsilonOnly(Recorder):
        name = "eps"
        requires: ClassVar[frozenset[str]] = frozenset({"epsilon"})

    plugins = fresh_plugins(inline(EpsilonOnly))
    editor = Editor(NoCrossAttention(tiny_backbone.tokenizer), EditConfig(**FAST, method="eps"), plugins)
    with pytest.raises(IncompatibleError, match="attention controller 'unified' cannot run on backbone "
                                                "'flow-only': it needs unet-cross-attention"):
        editor.edit(photo, "a photo", "a painting")


def test_the_backbone_default_method_and_working_size_apply(tiny_backbone, example_image):
    class RecorderDefault(TinyRandom):
        default_method = "recorder"

    Recorder.seen.clear()
    backbone = object.__new__(RecorderDefault)
    backbone.__dict__.update(tiny_backbone.__dict__)
    cfg = EditConfig(backbone="tiny-random-sd15", steps=2, iterations=1)
    assert cfg.method is None and cfg.working_size is None
    result = Editor(backbone, cfg, fresh_plugins(inline(Recorder))).edit(
        example_image.resize((512, 512)), "a photo", "a painting", post_process=False)
    assert Recorder.seen[0].z0.shape[-2:] == (256 // 8, 256 // 8)  # tiny-random-sd15's 256 px
    assert (result.config.method, result.config.working_size) == ("recorder", 256)


def test_controllers_are_restored_after_an_error_inside_the_method(tiny_backbone, plugins):
    unet = tiny_backbone.denoiser
    before = dict(unet.attn_processors)
    controller = plugins.attention_controller("unified")(
        backbone=tiny_backbone, source_prompt="a cat", target_prompt="a dog", num_steps=2)

    def boom(x0: torch.Tensor) -> torch.Tensor:
        assert unet.attn_processors != before  # installed while the method runs
        raise RuntimeError("injection failed")

    request = EditRequest(backbone=tiny_backbone, source_prompt="a cat", target_prompt="a dog",
                          z0=torch.zeros(1, 4, 8, 8), controller=controller, steps=2, opt_start=0.0,
                          inject=boom)
    with pytest.raises(RuntimeError, match="injection failed"):
        InfEdit().edit(request)
    assert all(unet.attn_processors[k] is before[k] for k in before)


def test_controllers_are_restored_after_a_cancel_through_the_editor(tiny_backbone, plugins, photo):
    before = dict(tiny_backbone.denoiser.attn_processors)
    editor = Editor(tiny_backbone, EditConfig(**FAST), plugins)
    with pytest.raises(Canceled):
        editor.edit(photo, "a photo", "a painting", callback=lambda *a: False)
    assert all(tiny_backbone.denoiser.attn_processors[k] is before[k] for k in before)


class Silent(EditMethod):
    """Returns the source latent without ever reporting a step."""

    name = "silent"
    uses_attention = False

    def edit(self, request: EditRequest) -> EditOutput:
        """No step reported."""
        return EditOutput(latent=request.z0)


def test_a_method_that_never_reports_its_steps_is_named_in_a_warning(tiny_backbone, photo):
    from spl_sdk.plugins import PluginWarning

    editor = Editor(tiny_backbone, EditConfig(**FAST, method="silent"), fresh_plugins(inline(Silent)))
    with pytest.warns(PluginWarning) as caught:
        editor.edit(photo, "a photo", "a painting", post_process=False)
    assert [str(w.message) for w in caught if "on_step" in str(w.message)] == [
        "edit method 'silent' (plug-in 'inline-0', package inline-0) never called "
        "request.on_step(i, n, x0_hat), so progress, previews and canceling do not work with it; "
        "call it after each step (docs/plugins.md, spl_register_edit_methods)."]


def test_a_method_that_reports_its_steps_gets_no_warning(tiny_backbone, photo):
    import warnings

    from spl_sdk.plugins import PluginWarning

    editor = Editor(tiny_backbone, EditConfig(**FAST, method="recorder"), fresh_plugins(inline(Recorder)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)
        editor.edit(photo, "a photo", "a painting", post_process=False)
