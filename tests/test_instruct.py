"""Instruction editing on ``tiny-random-kontext``: parity with FluxKontextPipeline, SPL injection, callback, CLI."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from spl_backbones.flux import pack
from spl_backbones.kontext import FluxKontextDev
from spl_backbones.tiny_instruct import TinyRandomKontext
from spl_methods.instruct import Instruct, starting_noise
from spl_sdk.cli import main
from spl_sdk.components.method import EditRequest
from spl_sdk.config import EditConfig
from spl_sdk.diffusers_callback import SPLCallback
from spl_sdk.editor import Editor
from spl_sdk.errors import ConfigError, IncompatibleError, ModelNotFoundError
from spl_sdk.imageio import pil_to_tensor, read_metadata
from spl_sdk.plugins import Plugins

SIZE = 64
INSTRUCTION = "make it night"


@pytest.fixture(scope="module")
def kontext():
    """The seeded tiny Kontext twin on the CPU, once for this module."""
    return TinyRandomKontext.load(device="cpu")


@pytest.fixture(scope="module")
def photo():
    from conftest import EXAMPLES

    with Image.open(EXAMPLES / "old_man.png") as img:
        return img.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def _pipeline(b):
    from diffusers import FluxKontextPipeline

    pipe = FluxKontextPipeline(transformer=b.transformer, scheduler=b.scheduler, vae=b.vae,
                               text_encoder=b.text_encoder, tokenizer=b.tokenizer,
                               text_encoder_2=b.text_encoder_2, tokenizer_2=b.tokenizer_2)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _pipe_kwargs(b, steps: int, seed: int) -> dict:
    # _auto_resize off and max_area = the size: the pipeline works at the photo's size, as the editor
    return {"prompt": INSTRUCTION, "num_inference_steps": steps, "guidance_scale": 3.5, "height": SIZE,
            "width": SIZE, "max_area": SIZE * SIZE, "_auto_resize": False, "output_type": "latent",
            "generator": torch.Generator("cpu").manual_seed(seed), "max_sequence_length": b.max_sequence_length}


def _request(b, photo, **kw) -> EditRequest:
    source = pil_to_tensor(photo)
    return EditRequest(backbone=b, source_prompt="", target_prompt=INSTRUCTION, z0=b.encode_image(source),
                       source_image=source, target_guidance=3.5, **kw)


# ------------------------------------------------------------------ registration
def test_kontext_backbones_are_registered_as_instruction_models(plugins):
    for name in ("flux-kontext-dev", "tiny-random-kontext"):
        cls = plugins.backbone(name)
        assert cls.default_method == "instruct" and "image-condition" in cls.capabilities
        assert {"flow", "embedded-guidance"} <= cls.capabilities
    assert plugins.backbone("flux-kontext-dev").default_model == "black-forest-labs/FLUX.1-Kontext-dev"
    assert FluxKontextDev.gated and not TinyRandomKontext.gated
    method = plugins.edit_method("instruct")
    assert not method.uses_source_prompt and not method.uses_attention


# ------------------------------------------------------------------ parity with diffusers
def test_velocity_equals_the_kontext_pipelines_transformer_call(kontext, photo):
    pipe = _pipeline(kontext)
    z = torch.randn(1, 16, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(2))
    # one step from t = 1 to 0: the returned latent is z - v
    out = pipe(image=photo, latents=pack(z), **{**_pipe_kwargs(kontext, 1, 0), "generator": None}).images
    cond = kontext.encode_instruction([INSTRUCTION], pil_to_tensor(photo),
                                      kontext.encode_image(pil_to_tensor(photo)))
    v = kontext.predict(z, kontext.timesteps(1, latent_shape=z.shape)[0], cond, guidance=3.5)
    torch.testing.assert_close(pack(v), pack(z) - out, rtol=1e-5, atol=1e-5)
    # the photo matters: without its tokens the velocity is FLUX's text-to-image one
    plain = kontext.predict(z, kontext.timesteps(1, latent_shape=z.shape)[0],
                            kontext.encode_prompts([INSTRUCTION]), guidance=3.5)
    assert (plain - v).abs().max() > 1e-3


def test_instruct_without_injection_reproduces_the_pipelines_sample(kontext, photo):
    expected = _pipeline(kontext)(image=photo, **_pipe_kwargs(kontext, 3, 5)).images
    out = Instruct().edit(_request(kontext, photo, steps=3, seed=5))
    torch.testing.assert_close(pack(out.latent), expected, rtol=1e-4, atol=1e-4)
    assert (out.latent - starting_noise(out.latent.shape, 5, out.latent.device)).abs().mean() > 1e-2
    assert out.extras["settings"].steps == 3 and out.steps_injected == []


def test_seeds_and_progress(kontext, photo):
    seen: list[tuple[int, int]] = []
    a = Instruct().edit(_request(kontext, photo, steps=2, seed=1, on_step=lambda i, n, x0: seen.append((i, n))))
    b = Instruct().edit(_request(kontext, photo, steps=2, seed=1))
    c = Instruct().edit(_request(kontext, photo, steps=2, seed=2))
    assert seen == [(0, 2), (1, 2)]
    assert torch.equal(a.latent, b.latent) and (a.latent - c.latent).abs().max() > 1e-3


# ------------------------------------------------------------------ loss injection and the callback
def _spl(a: torch.Tensor, b: torch.Tensor) -> float:
    from spl_losses.spl import SPLLoss

    return float(SPLLoss(weight=1.0)(a, b))


def _lossless_vae(backbone):
    """The backbone with its random VAE swapped for an exact one (2x2 pixel unshuffle, 12 of 16 channels).

    A randomly initialised VAE loses the photo's structure in a round trip, so no injection could
    show through it; with an exact VAE the test sees the method: the random transformer conditioned
    on the photo's tokens, the sampler and the put-back of the refined estimate.
    """
    backbone.encode_image = lambda x: F.pad(F.pixel_unshuffle(x.float(), 2), (0, 0, 0, 0, 0, 4))
    backbone.decode_latents = lambda z: F.pixel_shuffle(z[:, :12].float(), 2).clamp(-1, 1)
    backbone.vae_scale_factor, backbone.size_multiple = 2, 4
    return backbone


def test_injection_lowers_the_structure_loss_against_the_photo(photo):
    backbone = _lossless_vae(TinyRandomKontext.load(device="cpu"))
    editor = Editor(backbone, EditConfig(backbone="tiny-random-kontext", device="cpu"),
                    Plugins(load_entrypoints=True, env={}))
    common = {"working_size": SIZE, "steps": 4, "post_process": False, "iterations": 20, "seed": 3}
    plain = editor.edit(photo, None, INSTRUCTION, opt_start=1.0, **common)
    refined = editor.edit(photo, None, INSTRUCTION, opt_start=0.5, **common)
    source = pil_to_tensor(photo)
    before, after = _spl(source, pil_to_tensor(plain.image)), _spl(source, pil_to_tensor(refined.image))
    assert after < 0.5 * before, (before, after)
    assert refined.config.method == "instruct" and refined.source_prompt == ""
    assert refined.timings["optimisation"] > 0 and plain.timings["optimisation"] == 0


def test_callback_in_the_real_pipeline_gives_the_instruct_methods_latents(kontext, photo):
    pipe = _pipeline(kontext)
    callback = SPLCallback(pipe, photo, opt_start=0.5, iterations=5)
    assert isinstance(callback.backbone, FluxKontextDev)
    with_spl = pipe(image=photo, callback_on_step_end=callback,
                    callback_on_step_end_tensor_inputs=list(callback.tensor_inputs),
                    **_pipe_kwargs(kontext, 4, 7)).images
    assert callback.steps_injected == [2, 3]
    ours = Instruct().edit(_request(kontext, photo, steps=4, seed=7, opt_start=0.5, inject=callback.inject))
    assert ours.steps_injected == [2, 3]
    torch.testing.assert_close(pack(ours.latent), with_spl, rtol=1e-4, atol=1e-4)
    plain = pipe(image=photo, **_pipe_kwargs(kontext, 4, 7)).images
    assert (plain - with_spl).abs().max() > 1e-3  # it did change the trajectory


def test_callback_refuses_step_zero_in_one_sentence(kontext, photo):
    pipe = _pipeline(kontext)
    callback = SPLCallback(pipe, photo, opt_start=0.0, iterations=2)
    with pytest.raises(ConfigError, match="opt_start") as info:
        pipe(image=photo, callback_on_step_end=callback, **_pipe_kwargs(kontext, 2, 0))
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ save / load and loading errors
def test_save_pretrained_round_trip_and_diffusers_reads_the_folder(kontext, photo, tmp_path):
    from diffusers import FluxKontextPipeline

    folder = kontext.save_pretrained(tmp_path / "kontext")
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "FluxKontextPipeline"
    again = TinyRandomKontext.load(str(folder), device="cpu")
    real = FluxKontextDev.load(str(folder), device="cpu")
    for m1, m2 in zip(kontext.modules(), real.modules(), strict=True):
        s1, s2 = m1.state_dict(), m2.state_dict()
        assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    z = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(1))
    cond = again.encode_instruction([INSTRUCTION], None, kontext.encode_image(pil_to_tensor(photo)))
    torch.testing.assert_close(again.predict(z, 500.0, cond), kontext.predict(z, 500.0, cond), rtol=0, atol=0)
    pipe = FluxKontextPipeline.from_pretrained(folder)
    assert type(pipe.transformer).__name__ == "FluxTransformer2DModel"


def test_quantised_loading_is_refused_in_one_sentence_off_cuda(kontext, tmp_path):
    folder = kontext.save_pretrained(tmp_path / "kontext")
    with pytest.raises(ConfigError, match="CUDA") as info:
        FluxKontextDev.from_pretrained(folder, device="cpu", quantize="nf4")
    assert "\n" not in str(info.value)
    assert FluxKontextDev.Options(quantize="int8").quantize == "int8"


def test_flux_kontext_offline_without_weights_is_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="FLUX.1-Kontext-dev") as info:
        FluxKontextDev.load(device="cpu")
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ the CLI and refusals
FAST = ["--backbone", "tiny-random-kontext", "--working-size", str(SIZE), "--steps", "2", "--iterations", "3",
        "--device", "cpu"]


def test_spl_edit_runs_an_instruction_from_the_command_line(tmp_path, photo):
    path, out = tmp_path / "photo.png", tmp_path / "night.png"
    photo.resize((80, 64)).save(path)
    run = CliRunner().invoke(main, ["edit", str(path), "-t", INSTRUCTION, "-o", str(out), *FAST])
    assert run.exit_code == 0, run.output
    meta = read_metadata(out)
    assert Image.open(out).size == (80, 64)
    assert meta["target_prompt"] == INSTRUCTION and meta["config"]["method"] == "instruct"


@pytest.mark.parametrize(("extra", "needle"), [
    (["-s", "a man", "--method", "flowedit"], "instruction-edit model"),
    (["--attention", "p2p-replace"], "drives no attention controller"),
])
def test_two_prompt_methods_and_attention_controllers_are_refused(tmp_path, photo, extra, needle):
    path = tmp_path / "photo.png"
    photo.save(path)
    run = CliRunner().invoke(main, ["edit", str(path), "-t", INSTRUCTION, "-o", str(tmp_path / "o.png"),
                                    *FAST, *extra])
    assert run.exit_code == 1 and needle in run.output, run.output
    assert len(run.output.strip().splitlines()) == 1


def test_instruct_needs_an_instruction_model_and_other_methods_a_source_prompt(flux):
    with pytest.raises(IncompatibleError, match="image-condition"):
        Instruct().check(flux)
    editor = Editor(flux, EditConfig(backbone="tiny-random-flux", device="cpu"),
                    Plugins(load_entrypoints=True, env={}))
    with pytest.raises(Exception, match="source prompt is empty"):
        editor.edit(Image.new("RGB", (64, 64)), None, "a dog", working_size=64, steps=2)
