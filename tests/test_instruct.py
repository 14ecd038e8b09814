"""Instruction editing on the tiny twins of FLUX.1 Kontext and Qwen-Image-Edit: parity with their diffusers
pipelines, SPL injection, the diffusers callback, save/load, the CLI and the refusals."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from spl_backbones.flux import pack
from spl_backbones.flux2 import Flux2Klein, tokens_of
from spl_backbones.kontext import FluxKontextDev
from spl_backbones.qwen_image import QwenImageEdit
from spl_backbones.tiny_instruct import TinyRandomKlein, TinyRandomKontext, TinyRandomQwenEdit
from spl_methods.instruct import Instruct, starting_noise
from spl_sdk.cli import main
from spl_sdk.components.method import EditRequest, Sampling
from spl_sdk.config import EditConfig, RefineConfig
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
def qwen():
    """The seeded tiny Qwen-Image-Edit twin on the CPU, once for this module."""
    return TinyRandomQwenEdit.load(device="cpu")


@pytest.fixture(scope="module")
def photo():
    from conftest import EXAMPLES

    with Image.open(EXAMPLES / "old_man.png") as img:
        return img.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def klein():
    """The seeded tiny FLUX.2 [klein] twin on the CPU, once for this module."""
    return TinyRandomKlein.load(device="cpu")


@dataclass
class Twin:
    """A tiny twin, its diffusers pipeline built from the same components, and how their latents relate."""

    backbone: Any
    pipe: Any
    kwargs: Callable[..., dict]  # pipeline keywords for (steps, seed, guidance=...)
    latents_in: Callable[[torch.Tensor], torch.Tensor]  # our latent -> the pipeline's latents= argument
    loop_view: Callable[[torch.Tensor], torch.Tensor]  # our latent -> the pipeline's loop latents
    out_view: Callable[[torch.Tensor], torch.Tensor]  # our latent -> the pipeline's output_type="latent"


@pytest.fixture(params=["kontext", "qwen", "klein"])
def twin(request, kontext, qwen, klein, monkeypatch):
    if request.param == "kontext":
        return Twin(kontext, _kontext_pipeline(kontext), lambda steps, seed, **kw: _kontext_kwargs(kontext, steps, seed, **kw),
                    pack, pack, pack)
    if request.param == "qwen":
        return Twin(qwen, _qwen_pipeline(qwen, monkeypatch), _qwen_kwargs, pack, pack, pack)
    return Twin(klein, _klein_pipeline(klein), _klein_kwargs, lambda z: z, tokens_of, klein.to_vae_latents)


def _kontext_pipeline(b):
    from diffusers import FluxKontextPipeline

    pipe = FluxKontextPipeline(transformer=b.transformer, scheduler=b.scheduler, vae=b.vae,
                               text_encoder=b.text_encoder, tokenizer=b.tokenizer,
                               text_encoder_2=b.text_encoder_2, tokenizer_2=b.tokenizer_2)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _kontext_kwargs(b, steps: int, seed: int, guidance: float = 3.5) -> dict:
    # _auto_resize off and max_area = the size: the pipeline works at the photo's size, as the editor
    return {"prompt": INSTRUCTION, "num_inference_steps": steps, "guidance_scale": guidance, "height": SIZE,
            "width": SIZE, "max_area": SIZE * SIZE, "_auto_resize": False, "output_type": "latent",
            "generator": torch.Generator("cpu").manual_seed(seed), "max_sequence_length": b.max_sequence_length}


def _qwen_pipeline(b, monkeypatch):
    import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus as plus

    # the pipeline's photo sizes are module constants (384^2 and 1024^2 px): the twin's are 64^2
    monkeypatch.setattr(plus, "CONDITION_IMAGE_SIZE", b.condition_area)
    monkeypatch.setattr(plus, "VAE_IMAGE_SIZE", b.vae_area)
    pipe = plus.QwenImageEditPlusPipeline(transformer=b.transformer, scheduler=b.scheduler, vae=b.vae,
                                          text_encoder=b.text_encoder, tokenizer=b.tokenizer, processor=b.processor)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _qwen_kwargs(steps: int, seed: int, guidance: float = 4.0) -> dict:
    cfg = {"negative_prompt": " ", "true_cfg_scale": guidance} if guidance > 1 else {"true_cfg_scale": 1.0}
    return {"prompt": INSTRUCTION, "num_inference_steps": steps, "height": SIZE, "width": SIZE,
            "output_type": "latent", "generator": torch.Generator("cpu").manual_seed(seed), **cfg}


def _klein_pipeline(b):
    from diffusers import Flux2KleinPipeline

    pipe = Flux2KleinPipeline(transformer=b.transformer, scheduler=b.scheduler, vae=b.vae,
                              text_encoder=b.text_encoder, tokenizer=b.tokenizer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _klein_kwargs(steps: int, seed: int, guidance: float = 1.0) -> dict:
    return {"prompt": INSTRUCTION, "num_inference_steps": steps, "guidance_scale": guidance, "height": SIZE,
            "width": SIZE, "output_type": "latent", "generator": torch.Generator("cpu").manual_seed(seed),
            "max_sequence_length": TinyRandomKlein.max_sequence_length,
            "text_encoder_out_layers": TinyRandomKlein.text_layers}


def _request(b, photo, **kw) -> EditRequest:
    source = pil_to_tensor(photo)
    kw.setdefault("target_guidance", b.default_guidance)
    return EditRequest(backbone=b, source_prompt="", target_prompt=INSTRUCTION, z0=b.encode_image(source),
                       source_image=source, **kw)


# ------------------------------------------------------------------ registration
def test_instruction_backbones_are_registered_as_such(plugins):
    for name in ("flux-kontext-dev", "tiny-random-kontext", "qwen-image-edit", "tiny-random-qwen-edit",
                 "flux2-klein", "tiny-random-klein"):
        cls = plugins.backbone(name)
        assert cls.default_method == "instruct" and {"flow", "image-condition"} <= cls.capabilities
    assert "embedded-guidance" in FluxKontextDev.capabilities  # Qwen: true CFG instead
    assert "embedded-guidance" not in QwenImageEdit.capabilities
    assert plugins.backbone("flux-kontext-dev").default_model == "black-forest-labs/FLUX.1-Kontext-dev"
    assert plugins.backbone("qwen-image-edit").default_model == "Qwen/Qwen-Image-Edit-2511"
    assert plugins.backbone("flux2-klein").default_model == "black-forest-labs/FLUX.2-klein-4B"
    assert FluxKontextDev.gated and not QwenImageEdit.gated and not TinyRandomKontext.gated
    method = plugins.edit_method("instruct")
    assert not method.uses_source_prompt and not method.uses_attention


# ------------------------------------------------------------------ parity with diffusers
def test_velocity_equals_the_pipelines_transformer_call(twin, photo):
    b, pipe, kwargs = twin.backbone, twin.pipe, twin.kwargs
    f = b.vae_scale_factor
    z = torch.randn(1, b.transformer.config.in_channels // (4 if f == 8 else 1), SIZE // f, SIZE // f,
                    generator=torch.Generator().manual_seed(2))
    seen = {}

    def first_step(pipe, i, t, tensors):  # z_1 = z_0 + (t_1 - t_0) v_0, read back from the first step
        if i == 0:
            sigmas = pipe.scheduler.sigmas
            seen["v"] = (tensors["latents"] - twin.loop_view(z)) / float(sigmas[1] - sigmas[0])
            seen["t"] = float(t)
        return tensors

    # unguided (embedded guidance stays on): the velocity is the transformer's own output
    guidance = 3.5 if "embedded-guidance" in b.capabilities else 1.0
    pipe(image=photo, latents=twin.latents_in(z), callback_on_step_end=first_step,
         **{**kwargs(2, 0, guidance=guidance), "generator": None})
    source = pil_to_tensor(photo)
    cond = b.encode_instruction([INSTRUCTION], source, b.encode_image(source))
    assert seen["t"] == b.timesteps(2, latent_shape=z.shape)[0]
    v = b.predict(z, seen["t"], cond, guidance=3.5)
    torch.testing.assert_close(twin.loop_view(v), seen["v"], rtol=1e-5, atol=1e-5)
    # the photo matters: without it the velocity is another one
    assert (b.predict(z, seen["t"], b.encode_prompts([INSTRUCTION]), guidance=3.5) - v).abs().max() > 1e-3


@pytest.mark.parametrize("guided", [False, True])
def test_instruct_without_injection_reproduces_the_pipelines_sample(twin, photo, guided):
    b, pipe, kwargs = twin.backbone, twin.pipe, twin.kwargs
    # the model's default guidance (Kontext embedded 3.5, Qwen true CFG 4, klein none), then a CFG run
    guidance = 4.0 if guided else b.default_guidance
    expected = pipe(image=photo, **kwargs(3, 5, guidance=guidance)).images
    out = Instruct().edit(_request(b, photo, steps=3, seed=5, target_guidance=guidance))
    torch.testing.assert_close(twin.out_view(out.latent), expected, rtol=1e-4, atol=1e-4)
    assert (out.latent - starting_noise(out.latent.shape, 5, out.latent.device)).abs().mean() > 1e-2
    assert out.extras["settings"].steps == 3 and out.steps_injected == []


def test_settings_come_from_options_then_the_edit_then_the_model(kontext):
    assert Instruct().sampling(FluxKontextDev) == Sampling(28, None, 3.5, "auto")
    assert Instruct().sampling(QwenImageEdit) == Sampling(40, None, 4.0, "auto")
    assert Instruct().sampling(Flux2Klein) == Sampling(4, None, 1.0, "auto")
    assert Instruct().sampling(kontext).align == "off"  # the twin paints noise: nothing to align
    method = Instruct(Instruct.Options(steps=6))
    assert (method.settings(kontext, steps=9, guidance=2.0).steps, method.settings(kontext, 9, 2.0).guidance) == (6, 2.0)


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


def _lossless_vae(backbone, channels: int = 16):
    """The backbone with its random VAE swapped for an exact one (2x2 pixel unshuffle, 12 of 16 channels).

    A randomly initialized VAE loses the photo's structure in a round trip, so no injection could
    show through it; with an exact VAE the test sees the method: the random transformer conditioned
    on the photo's tokens, the sampler and the put-back of the refined estimate.
    """
    backbone.encode_image = lambda x: F.pad(F.pixel_unshuffle(x.float(), 2), (0, 0, 0, 0, 0, channels - 12))
    backbone.decode_latents = lambda z: F.pixel_shuffle(z[:, :12].float(), 2).clamp(-1, 1)
    backbone.vae_scale_factor, backbone.size_multiple = 2, 4
    return backbone


@pytest.mark.parametrize(("cls", "channels"), [(TinyRandomKontext, 16), (TinyRandomQwenEdit, 16),
                                               (TinyRandomKlein, 128)])
def test_injection_lowers_the_structure_loss_against_the_photo(cls, channels, photo):
    backbone = _lossless_vae(cls.load(device="cpu"), channels)
    editor = Editor(backbone, EditConfig(backbone=cls.name, device="cpu"), Plugins(load_entrypoints=True, env={}))
    common = {"working_size": SIZE, "steps": 4, "post_process": False, "iterations": 20, "seed": 3}
    plain = editor.edit(photo, None, INSTRUCTION, opt_start=1.0, **common)
    refined = editor.edit(photo, None, INSTRUCTION, opt_start=0.5, **common)
    source = pil_to_tensor(photo)
    before, after = _spl(source, pil_to_tensor(plain.image)), _spl(source, pil_to_tensor(refined.image))
    assert after < 0.5 * before, (before, after)
    assert refined.config.method == "instruct" and refined.source_prompt == ""
    assert refined.timings["optimization"] > 0 and plain.timings["optimization"] == 0


def test_callback_in_the_real_pipeline_gives_the_instruct_methods_latents(twin, photo):
    b, pipe, kwargs = twin.backbone, twin.pipe, twin.kwargs
    callback = SPLCallback(pipe, photo, opt_start=0.5, iterations=5)
    assert type(callback.backbone).__name__ in ("FluxKontextDev", "QwenImageEdit", "Flux2Klein")
    with_spl = pipe(image=photo, callback_on_step_end=callback,
                    callback_on_step_end_tensor_inputs=list(callback.tensor_inputs), **kwargs(4, 7)).images
    assert callback.steps_injected == [2, 3]
    ours = Instruct().edit(_request(b, photo, steps=4, seed=7, opt_start=0.5, inject=callback.inject))
    assert ours.steps_injected == [2, 3]
    torch.testing.assert_close(twin.out_view(ours.latent), with_spl, rtol=1e-4, atol=1e-4)
    plain = pipe(image=photo, **kwargs(4, 7)).images
    assert (plain - with_spl).abs().max() > 1e-3  # it did change the trajectory


def test_callback_refuses_step_zero_in_one_sentence(kontext, photo):
    pipe = _kontext_pipeline(kontext)
    callback = SPLCallback(pipe, photo, opt_start=0.0, iterations=2)
    with pytest.raises(ConfigError, match="opt_start") as info:
        pipe(image=photo, callback_on_step_end=callback, **_kontext_kwargs(kontext, 2, 0))
    assert "\n" not in str(info.value)


def test_callback_takes_an_edit_config_and_uses_its_profiles_solver(kontext, photo):
    pipe = _kontext_pipeline(kontext)
    latent = kontext.encode_image(pil_to_tensor(photo.resize((SIZE, SIZE))))
    given = SPLCallback(pipe, photo, config=EditConfig(iterations=3), backbone=kontext).inject(latent)
    fast = SPLCallback(pipe, photo, config=RefineConfig(iterations=3, solver="fast"),
                       backbone=kontext).inject(latent)
    torch.testing.assert_close(given, fast, rtol=0, atol=0)


def test_callback_names_the_pipelines_it_knows_for_another_one(plugins):
    class OtherPipeline:
        pass

    with pytest.raises(ConfigError, match="OtherPipeline"):
        SPLCallback(OtherPipeline(), Image.new("RGB", (64, 64)), plugins=plugins)


# ------------------------------------------------------------------ save / load and loading errors
@pytest.mark.parametrize(("cls", "real", "pipeline"), [
    (TinyRandomKontext, FluxKontextDev, "FluxKontextPipeline"),
    (TinyRandomQwenEdit, QwenImageEdit, "QwenImageEditPlusPipeline"),
    (TinyRandomKlein, Flux2Klein, "Flux2KleinPipeline"),
])
def test_save_pretrained_round_trip_and_diffusers_reads_the_folder(cls, real, pipeline, kontext, qwen, klein,
                                                                   photo, tmp_path):
    import diffusers

    b = {TinyRandomKontext: kontext, TinyRandomQwenEdit: qwen, TinyRandomKlein: klein}[cls]
    folder = b.save_pretrained(tmp_path / "model")
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == pipeline
    again, loaded = cls.load(str(folder), device="cpu"), real.load(str(folder), device="cpu")
    for m1, m2 in zip(b.modules(), loaded.modules(), strict=True):
        s1, s2 = m1.state_dict(), m2.state_dict()
        assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    source = pil_to_tensor(photo)
    cond = again.encode_instruction([INSTRUCTION], source, b.encode_image(source))
    z = torch.randn(b.encode_image(source).shape, generator=torch.Generator().manual_seed(1))
    # same weights; the reloaded model may pick another attention kernel (measured: 2e-7 apart for Qwen)
    torch.testing.assert_close(again.predict(z, 500.0, cond), b.predict(z, 500.0, cond), rtol=1e-5, atol=1e-6)
    assert again.tokenize(INSTRUCTION) == b.tokenize(INSTRUCTION)
    pipe = getattr(diffusers, pipeline).from_pretrained(folder)
    assert type(pipe.transformer) is type(b.transformer)


def test_quantized_loading_is_refused_in_one_sentence_off_cuda(kontext, tmp_path):
    folder = kontext.save_pretrained(tmp_path / "kontext")
    with pytest.raises(ConfigError, match="CUDA") as info:
        FluxKontextDev.from_pretrained(folder, device="cpu", quantize="nf4")
    assert "\n" not in str(info.value)
    assert FluxKontextDev.Options(quantize="int8").quantize == "int8"
    assert QwenImageEdit.Options(quantize="nf4").quantize == "nf4"


@pytest.mark.parametrize(("cls", "model"), [(FluxKontextDev, None), (QwenImageEdit, None), (Flux2Klein, None),
                                            (QwenImageEdit, "Qwen/Qwen-Image-Edit-2509")])
def test_offline_without_weights_is_one_sentence(cls, model, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match=(model or cls.default_model).split("/")[1]) as info:
        cls.load(model, device="cpu")
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ the CLI and refusals
FAST = ["--backbone", "tiny-random-kontext", "--working-size", str(SIZE), "--steps", "2", "--iterations", "3",
        "--device", "cpu"]


@pytest.mark.parametrize("backbone", ["tiny-random-kontext", "tiny-random-qwen-edit", "tiny-random-klein"])
def test_spl_edit_runs_an_instruction_from_the_command_line(tmp_path, photo, backbone):
    path, out = tmp_path / "photo.png", tmp_path / "night.png"
    photo.resize((80, 64)).save(path)
    run = CliRunner().invoke(main, ["edit", str(path), "-t", INSTRUCTION, "-o", str(out), *FAST,
                                    "--backbone", backbone])
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


def test_spl_batch_runs_instruction_rows_and_still_asks_other_methods_for_a_source(tmp_path, photo):
    photo.save(tmp_path / "a.png")
    manifest = tmp_path / "rows.jsonl"
    manifest.write_text(json.dumps({"image": "a.png", "target_prompt": INSTRUCTION}) + "\n", encoding="utf-8")
    run = CliRunner().invoke(main, ["batch", str(manifest), "-o", str(tmp_path / "out"), *FAST])
    assert run.exit_code == 0, run.output
    record = json.loads((tmp_path / "out" / "results.jsonl").read_text().splitlines()[0])
    assert record["status"] == "ok" and read_metadata(record["output"])["config"]["method"] == "instruct"
    other = CliRunner().invoke(main, ["batch", str(manifest), "-o", str(tmp_path / "other"), "--backbone",
                                      "tiny-random-sd15", "--working-size", "64", "--steps", "1"])
    record = json.loads((tmp_path / "other" / "results.jsonl").read_text().splitlines()[0])
    assert other.exit_code != 0 and "no source_prompt" in record["error"]


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_callback_adds_spl_to_flux_and_sd3_pipelines(family, flux, sd3, photo):
    from diffusers import FluxPipeline, StableDiffusion3Pipeline

    b = flux if family == "flux" else sd3
    names = ("transformer", "scheduler", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2",
             *(("text_encoder_3", "tokenizer_3") if family == "sd3" else ()))
    pipe = (FluxPipeline if family == "flux" else StableDiffusion3Pipeline)(**{n: getattr(b, n) for n in names})
    pipe.set_progress_bar_config(disable=True)
    kwargs = {"prompt": "a portrait at night", "num_inference_steps": 4, "height": SIZE, "width": SIZE,
              "output_type": "latent", "max_sequence_length": b.max_sequence_length}
    plain = pipe(generator=torch.Generator("cpu").manual_seed(1), **kwargs).images
    callback = SPLCallback(pipe, photo, opt_start=0.5, iterations=5)
    with_spl = pipe(generator=torch.Generator("cpu").manual_seed(1), callback_on_step_end=callback, **kwargs).images
    assert callback.steps_injected == [2, 3] and (plain - with_spl).abs().max() > 1e-3
    # the last step lands on the refined estimate: its decoded image is closer in structure to the photo
    latent = callback.backbone.from_pipeline_latents(with_spl, SIZE, SIZE) if family == "flux" else with_spl
    unrefined = callback.backbone.from_pipeline_latents(plain, SIZE, SIZE) if family == "flux" else plain
    source = pil_to_tensor(photo)
    assert _spl(source, b.decode_latents(latent)) < _spl(source, b.decode_latents(unrefined))


def _photo_and_left_half(tmp_path, photo):
    """The photo, a mask of its left half (white) as files, and an output path."""
    path, mask = tmp_path / "photo.png", tmp_path / "mask.png"
    photo.save(path)
    half = Image.new("L", photo.size, 0)
    half.paste(255, (0, 0, SIZE // 2, SIZE))
    half.save(mask)
    return path, mask, tmp_path / "o.png"


def test_masked_losses_with_a_user_mask_on_an_instruction_backbone(tmp_path, photo):
    path, mask, out = _photo_and_left_half(tmp_path, photo)
    run = CliRunner().invoke(main, ["edit", str(path), "-t", INSTRUCTION, "-o", str(out), *FAST, "--mask", str(mask),
                                    "--structure-area", "masked", "--save-mask", str(tmp_path / "used.png")])
    assert run.exit_code == 0, run.output
    assert read_metadata(out)["config"]["structure_area"] == "masked"
    used = np.asarray(Image.open(tmp_path / "used.png").convert("L"))
    assert used[:, : SIZE // 2].min() == 255 and used[:, SIZE // 2:].max() == 0


def test_the_decoded_edit_is_aligned_onto_the_photo_before_post_processing(kontext, photo, monkeypatch):
    import spl_sdk.align as aligning

    seen = []

    def spy(source, edited, mode="auto"):  # stands in for the registration: shift the edit back by 2 px
        seen.append((tuple(source.shape), tuple(edited.shape), mode))
        return aligning.Alignment(torch.roll(edited, 2, dims=-1), torch.ones_like(edited[:, :1]), {"mode": "affine"})

    monkeypatch.setattr(aligning, "align", spy)
    editor = Editor(kontext, EditConfig(backbone="tiny-random-kontext", device="cpu"),
                    Plugins(load_entrypoints=True, env={}))
    common = {"working_size": SIZE, "steps": 2, "post_process": False, "seed": 3}
    off = editor.edit(photo, None, INSTRUCTION, **common)  # the twin's default: off
    on = editor.edit(photo, None, INSTRUCTION, align="auto", **common)
    assert (off.config.align, on.config.align) == ("off", "auto")
    assert seen == [((1, 3, SIZE, SIZE), (1, 3, SIZE, SIZE), "auto")]
    np.testing.assert_array_equal(np.roll(np.asarray(off.image), 2, axis=1), np.asarray(on.image))


def test_a_confined_edit_keeps_the_photo_outside_the_mask_exactly(tmp_path, kontext, photo):
    path, mask, out = _photo_and_left_half(tmp_path, photo)
    run = CliRunner().invoke(main, ["edit", str(path), "-t", INSTRUCTION, "-o", str(out), *FAST, "--mask", str(mask),
                                    "--option", "instruct.confine=true"])
    assert run.exit_code == 0, run.output
    result, original = np.asarray(Image.open(out).convert("RGB")), np.asarray(photo)
    np.testing.assert_array_equal(result[:, SIZE // 2:], original[:, SIZE // 2:])  # outside: the photo
    assert np.abs(result[:, : SIZE // 4].astype(int) - original[:, : SIZE // 4]).mean() > 5  # inside: edited
    # the latent outside the region ends at the photo's own latent
    source = pil_to_tensor(photo)
    region = pil_to_tensor(Image.open(mask).convert("RGB"))[:, :1] * 0.5 + 0.5
    confined = Instruct(Instruct.Options(confine=True)).edit(_request(kontext, photo, steps=2, seed=1, mask=region))
    z0 = kontext.encode_image(source)
    torch.testing.assert_close(confined.latent[..., SIZE // 16:], z0[..., SIZE // 16:], rtol=0, atol=1e-6)
    assert confined.region is region


def test_confine_without_a_mask_is_one_sentence(tmp_path, photo):
    path = tmp_path / "photo.png"
    photo.save(path)
    run = CliRunner().invoke(main, ["edit", str(path), "-t", INSTRUCTION, "-o", str(tmp_path / "o.png"), *FAST,
                                    "--option", "instruct.confine=true"])
    assert run.exit_code == 1 and "--mask" in run.output and len(run.output.strip().splitlines()) == 1


def test_callback_follows_the_schedules_tail_in_an_img2img_pipeline(flux, photo):
    from diffusers import FluxImg2ImgPipeline

    names = ("transformer", "scheduler", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")
    pipe = FluxImg2ImgPipeline(**{n: getattr(flux, n) for n in names})
    pipe.set_progress_bar_config(disable=True)
    seen: list[tuple] = []
    callback = SPLCallback(pipe, photo, opt_start=0.5, iterations=3)
    inject = callback.inject

    def recording(x0):  # what the callback refines, to check the velocity it recovered
        seen.append(x0)
        return inject(x0)

    callback.inject = recording
    kwargs = {"prompt": "a portrait at night", "image": photo, "strength": 0.6, "num_inference_steps": 5,
              "height": SIZE, "width": SIZE, "output_type": "latent", "max_sequence_length": flux.max_sequence_length}
    steps: list = []

    def both(pipe, i, t, tensors):  # the SPL callback, and the latents and path times around it
        index = pipe.scheduler.step_index
        before = tensors["latents"].clone()
        out = callback(pipe, i, t, tensors)
        steps.append((i, float(pipe.scheduler.sigmas[index - 1]), float(pipe.scheduler.sigmas[index]), before))
        return out

    pipe(generator=torch.Generator("cpu").manual_seed(2), callback_on_step_end=both, **kwargs)
    assert [s[0] for s in steps] == [0, 1, 2] and callback.steps_injected == [2]  # 3 of 5 steps run
    # the clean estimate refined at step 2 is the one of the step the scheduler took: z - t v
    (_, t, t_next, z_next), z_prev = steps[2], flux.from_pipeline_latents(steps[1][3], SIZE, SIZE)
    z_next = flux.from_pipeline_latents(z_next, SIZE, SIZE)
    v = (z_next - z_prev) / (t_next - t)
    torch.testing.assert_close(seen[0], z_next - t_next * v, rtol=1e-5, atol=1e-5)
    # the run's last step ends the schedule (t = 0): the sigmas are read where the scheduler is,
    # not at the callback's step count (which would be the start of the full schedule)
    assert t_next == 0.0 < t < 0.5
