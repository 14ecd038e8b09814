"""SDXL-class backbones: the tiny SDXL layout, equality with diffusers' StableDiffusionXLPipeline,
loading (LCM UNet, LCM-LoRA, fp16-safe VAE), and attention control on SDXL's attention layout."""

from __future__ import annotations

import json
from types import SimpleNamespace

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from spl_attention import InfEditController
from spl_backbones.sdxl import SDXL_SUBFOLDERS
from spl_backbones.sdxl_lcm import LCMSDXL, LCMLoRASDXL
from spl_backbones.sdxl_random import SDXL_UNET, TINY_SDXL_UNET, TinyRandomSDXL
from spl_backbones.tokenizer import build_clip_tokenizer
from spl_sdk.cli import main
from spl_sdk.components import BatchLayout, Conditioning, EditRequest
from spl_sdk.config import EditConfig
from spl_sdk.editor import Editor
from spl_sdk.errors import Canceled, ModelNotFoundError
from spl_sdk.imageio import pil_to_tensor
from spl_sdk.options import load_backbone
from spl_sdk.prompts import word_positions

FAST = dict(backbone="tiny-random-sdxl", working_size=128, steps=3, iterations=5)
PROMPT = "a photo of a cat"


@pytest.fixture(scope="module")
def sdxl() -> TinyRandomSDXL:
    return TinyRandomSDXL.load(device="cpu")


@pytest.fixture(scope="module")
def saved(sdxl, tmp_path_factory):
    return sdxl.save_pretrained(tmp_path_factory.mktemp("tiny-sdxl"))


def _state(backbone) -> dict[str, torch.Tensor]:
    return {f"{i}.{k}": v for i, m in enumerate(backbone.modules()) for k, v in m.state_dict().items()}


def _latents(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ registration and layout
def test_sdxl_backbones_are_registered(plugins):
    names = set(plugins.names("backbone"))
    assert {"lcm-sdxl", "lcm-lora-sdxl", "tiny-random-sdxl", "random-sdxl"} <= names
    for name in ("lcm-sdxl", "lcm-lora-sdxl"):
        cls = plugins.backbone(name)
        assert cls.family == "sdxl" and cls.default_working_size == 1024 and cls.attention_res == 32
        assert cls.default_model == "stabilityai/stable-diffusion-xl-base-1.0"
    assert plugins.backbone("lcm-sdxl").default_unet == "latent-consistency/lcm-sdxl"
    assert plugins.backbone("lcm-lora-sdxl").default_adapter == "latent-consistency/lcm-lora-sdxl"


def test_tiny_sdxl_has_the_sdxl_layout(sdxl):
    for key in ("down_block_types", "up_block_types", "layers_per_block", "addition_embed_type",
                "use_linear_projection"):
        assert TINY_SDXL_UNET[key] == SDXL_UNET[key]
    cfg = sdxl.unet.config
    assert cfg.addition_embed_type == "text_time" and max(cfg.transformer_layers_per_block) > 1
    widths = sdxl.text_encoder.config.hidden_size + sdxl.text_encoder_2.config.hidden_size
    assert cfg.cross_attention_dim == widths
    assert type(sdxl.text_encoder_2).__name__ == "CLIPTextModelWithProjection"
    # the real CLIP vocabulary; the second tokenizer pads with "!" (id 0) as SDXL's does
    for tok, pad in ((sdxl.tokenizer, 49407), (sdxl.tokenizer_2, 0)):
        ids = tok(PROMPT, padding="max_length", max_length=77).input_ids
        assert ids[:7] == [49406, 320, 1125, 539, 320, 2368, 49407] and ids[7:] == [pad] * 70
    assert type(sdxl.scheduler).__name__ == "LCMScheduler"


def test_tiny_sdxl_is_seeded(sdxl):
    again = TinyRandomSDXL.load(device="cpu")
    a, b = _state(sdxl), _state(again)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_prompts_give_both_encoders_and_the_pooled_output(sdxl):
    cond = sdxl.encode_prompts(["", PROMPT, "a photo of a dog"])
    assert isinstance(cond, Conditioning)
    assert cond.embeddings.shape == (3, 77, 64) and cond.extras["pooled"].shape == (3, 32)
    # empty prompt (the negative) -> zeros, as the pipeline with force_zeros_for_empty_prompt
    assert not cond.embeddings[0].any() and not cond.extras["pooled"][0].any()
    assert not torch.equal(cond.embeddings[1], cond.embeddings[2])
    assert torch.equal(cond.rows([2, 1]).extras["pooled"], cond.extras["pooled"][[2, 1]])
    assert sdxl.time_ids((32, 48), 2).tolist() == [[256, 384, 0, 0, 256, 384]] * 2


# ------------------------------------------------------------------ equality with diffusers
def _pipeline_prediction(backbone, prompt: str, latents: torch.Tensor, guidance: float,
                         zero_empty: bool) -> dict:
    """One LCM step of StableDiffusionXLPipeline; the UNet's timestep/output and the guided noise."""
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline(
        vae=backbone.vae, text_encoder=backbone.text_encoder, text_encoder_2=backbone.text_encoder_2,
        tokenizer=backbone.tokenizer, tokenizer_2=backbone.tokenizer_2, unet=backbone.unet,
        scheduler=backbone.scheduler, force_zeros_for_empty_prompt=zero_empty, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    seen: dict = {}

    def unet_hook(module, args, kwargs, out):
        seen.update(t=args[1], out=out[0].clone(), added=kwargs["added_cond_kwargs"])

    def scheduler_step(model_output, *args, **kwargs):
        seen["guided"] = model_output.clone()
        raise _Stop  # the step itself is not under test

    hook = backbone.unet.register_forward_hook(unet_hook, with_kwargs=True)
    backbone.scheduler.step = scheduler_step  # an instance attribute shadowing the method
    try:
        h, w = (s * 8 for s in latents.shape[-2:])
        with pytest.raises(_Stop):
            pipe(prompt, height=h, width=w, num_inference_steps=1, guidance_scale=guidance,
                 latents=latents, output_type="latent")
    finally:
        hook.remove()
        del backbone.scheduler.step
    return seen


class _Stop(Exception):
    """Ends the pipeline call after the first guided noise prediction."""


@pytest.mark.parametrize("guidance, zero_empty", [(1.0, True), (3.0, True), (3.0, False)])
def test_noise_prediction_equals_the_diffusers_sdxl_pipeline(sdxl, guidance, zero_empty):
    latents = _latents(1, 4, 32, 48)  # 256 x 384 px: time ids (256, 384, 0, 0, 256, 384)
    seen = _pipeline_prediction(sdxl, PROMPT, latents, guidance, zero_empty)
    sdxl.zero_empty_prompt = zero_empty
    try:
        if guidance > 1:
            cond = sdxl.encode_prompts(["", PROMPT])
            eps = sdxl.predict(torch.cat([latents] * 2), seen["t"], cond)
            uncond, text = eps.chunk(2)
            guided = uncond + guidance * (text - uncond)
        else:  # no classifier-free batch
            eps = guided = sdxl.predict(latents, seen["t"], sdxl.encode_prompts([PROMPT]))
    finally:
        sdxl.zero_empty_prompt = True
    torch.testing.assert_close(eps, seen["out"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(guided, seen["guided"], atol=1e-5, rtol=1e-5)
    assert seen["added"]["time_ids"][0].tolist() == [256, 384, 0, 0, 256, 384]


# ------------------------------------------------------------------ loading
def test_save_pretrained_and_load_back(sdxl, saved, plugins):
    assert all((saved / sub).is_dir() for sub in SDXL_SUBFOLDERS)
    index = json.loads((saved / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline" and index["force_zeros_for_empty_prompt"]
    loaded = plugins.backbone("tiny-random-sdxl").load(str(saved), device="cpu")
    a, b = _state(sdxl), _state(loaded)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    cond = loaded.encode_prompts(["", PROMPT])
    latents = _latents(2, 4, 16, 16)
    torch.testing.assert_close(loaded.predict(latents, 500, cond), sdxl.predict(latents, 500, cond))


def test_force_zeros_for_empty_prompt_is_read_from_model_index(saved, tmp_path):
    import shutil

    folder = shutil.copytree(saved, tmp_path / "no-zeros")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "force_zeros_for_empty_prompt": False}))
    loaded = TinyRandomSDXL.load(str(folder), device="cpu")
    assert loaded.zero_empty_prompt is False
    assert loaded.encode_prompts([""]).extras["pooled"].abs().sum() > 0  # "" encoded like a prompt


def test_lcm_sdxl_takes_its_unet_from_lcm_unet(saved, tmp_path):
    import shutil

    folder = shutil.copytree(saved, tmp_path / "sdxl")
    other = TinyRandomSDXL.build_components()["unet"]
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.5)
    other.save_pretrained(folder / "lcm_unet")
    shutil.rmtree(folder / "unet")  # lcm-sdxl never reads the base UNet
    lcm = LCMSDXL.load(str(folder), device="cpu")
    expected = other.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in lcm.unet.state_dict().items())
    assert lcm.name == "lcm-sdxl" and (lcm.save_pretrained(tmp_path / "again") / "lcm_unet").is_dir()


def test_unet_and_vae_options_replace_those_parts(saved, tmp_path, plugins):
    from diffusers import AutoencoderKL

    parts = TinyRandomSDXL.build_components()
    with torch.no_grad():
        for p in parts["unet"].parameters():
            p.mul_(-1)
    parts["unet"].save_pretrained(tmp_path / "my-unet")
    AutoencoderKL.from_config({**dict(parts["vae"].config), "force_upcast": False}).save_pretrained(
        tmp_path / "my-vae")
    # `saved` has no lcm_unet/: without the option lcm-sdxl would need the Hub's UNet
    cfg = EditConfig(backbone="lcm-sdxl", model=str(saved), device="cpu", options={
        "lcm-sdxl": {"unet": str(tmp_path / "my-unet"), "vae": str(tmp_path / "my-vae")}})
    backbone = load_backbone(plugins, cfg)
    expected = parts["unet"].state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in backbone.unet.state_dict().items())
    assert backbone.vae.config.force_upcast is False


def test_lcm_sdxl_without_its_unet_offline_is_one_sentence(saved, tmp_path, monkeypatch):
    import shutil

    folder = shutil.copytree(saved, tmp_path / "base")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelNotFoundError) as info:
        LCMSDXL.load(str(folder), device="cpu")
    message = str(info.value)
    assert "'latent-consistency/lcm-sdxl'" in message and "lcm_unet/" in message
    assert "\n" not in message and message.endswith(".") and message.count(". ") == 0


def kohya_layout(lora: dict[str, torch.Tensor], rank: int) -> dict[str, torch.Tensor]:
    """diffusers' LoRA keys rewritten as kohya-style files name them: ``lora_unet_<module path with _>``."""
    out = {}
    for key, value in lora.items():
        module, _, kind = key.rpartition(".lora.")
        flat = "lora_unet_" + module.replace(".", "_")
        out[f"{flat}.lora_{kind.split('.')[0]}.weight"] = value
        out[f"{flat}.alpha"] = torch.tensor(float(rank))
    return out


@pytest.mark.parametrize("layout", ["diffusers", "kohya"])
def test_lcm_lora_sdxl_fuses_a_local_lora(sdxl, saved, tmp_path, plugins, layout):
    from diffusers.loaders import StableDiffusionXLLoraLoaderMixin
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    reference = TinyRandomSDXL.build_components()["unet"]
    with torch.random.fork_rng():
        torch.manual_seed(5)
        reference.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                         target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    lora = convert_state_dict_to_diffusers(get_peft_model_state_dict(reference))
    if layout == "diffusers":
        StableDiffusionXLLoraLoaderMixin.save_lora_weights(tmp_path / "lora", unet_lora_layers=lora)
    else:  # lora_unet_..._to_q.lora_down.weight with an alpha per module, as kohya-style tools save
        (tmp_path / "lora").mkdir()
        save_file(kohya_layout(lora, rank=4), str(tmp_path / "lora" / "pytorch_lora_weights.safetensors"))

    cfg = EditConfig(backbone="lcm-lora-sdxl", model=str(saved), device="cpu",
                     options={"lcm-lora-sdxl": {"adapter": str(tmp_path / "lora")}})
    fused = load_backbone(plugins, cfg)  # the option travels from the config to the loader
    assert isinstance(fused, LCMLoRASDXL)
    cond = sdxl.encode_prompts(["a cat", "a dog"])
    latents = _latents(2, 4, 16, 16, seed=2)
    added = {"text_embeds": cond.extras["pooled"], "time_ids": sdxl.time_ids((16, 16), 2)}
    with torch.no_grad():
        expected = reference(latents, 500, encoder_hidden_states=cond.embeddings,
                             added_cond_kwargs=added).sample
    out = fused.predict(latents, 500, cond)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    assert (out - sdxl.predict(latents, 500, cond)).abs().max() > 1e-2
    attn = fused.unet.down_blocks[2].attentions[0].transformer_blocks[1].attn2
    assert type(attn.to_q) is torch.nn.Linear  # merged, peft layers removed


def test_float16_keeps_an_upcast_vae_in_float32_and_takes_a_fixed_vae(saved, tmp_path):
    half = TinyRandomSDXL.load(device="cpu", dtype="float16")
    assert half.unet.dtype == torch.float16 and half.text_encoder_2.dtype == torch.float16
    assert half.vae.config.force_upcast and half.vae.dtype == torch.float32
    image = torch.zeros(1, 3, 64, 64)
    assert half.encode_image(image).dtype == torch.float32  # the VAE ran in float32
    # an fp16-safe VAE (force_upcast false, like madebyollin/sdxl-vae-fp16-fix) runs in float16
    from diffusers import AutoencoderKL

    fixed = AutoencoderKL.from_config({**dict(half.vae.config), "force_upcast": False})
    fixed.save_pretrained(tmp_path / "vae-fix")
    loaded = TinyRandomSDXL.from_pretrained(saved, device="cpu", dtype="float16",
                                            vae=tmp_path / "vae-fix")
    assert loaded.vae.dtype == torch.float16 and not loaded.vae.config.force_upcast
    fixed_state = fixed.state_dict()
    assert all(torch.equal(v.half(), fixed_state[k].half()) for k, v in loaded.vae.state_dict().items())


def test_cpu_offload_brings_each_of_the_four_models_in_turn(sdxl, monkeypatch):
    kept: list[int] = []
    monkeypatch.setattr("spl_backbones.offload.keep_only", lambda hooks, i: kept.append(i))
    monkeypatch.setattr(sdxl, "offload_hooks", [object()] * 4)  # as if placed with cpu_offload
    cond = sdxl.encode_prompts([PROMPT])
    sdxl.decode_latents(sdxl.encode_image(torch.zeros(1, 3, 64, 64)))
    sdxl.predict(_latents(1, 4, 8, 8), 500, cond)
    assert kept == [0, 1, 3, 3, 2]  # text_encoder, text_encoder_2, VAE twice, UNet


# ------------------------------------------------------------------ editing on SDXL's layout
def test_equal_prompts_and_guidance_reproduce_the_vae_round_trip(sdxl, plugins, example_image):
    """docs/method.md section 2 invariant through the infedit method, the SDXL UNet and the controller."""
    z0 = sdxl.encode_image(pil_to_tensor(example_image.resize((128, 128)))).float()
    prompt = "a photo of an old man"
    controller = plugins.attention_controller("unified")(
        backbone=sdxl, source_prompt=prompt, target_prompt=prompt, num_steps=4)
    seen: list[torch.Tensor] = []
    out = plugins.edit_method("infedit")().edit(EditRequest(
        backbone=sdxl, source_prompt=prompt, target_prompt=prompt, z0=z0, controller=controller,
        steps=4, source_guidance=1.5, target_guidance=1.5, seed=0, original_steps=50,
        on_step=lambda i, n, x0: seen.append(x0)))
    assert len(seen) == 4 and controller.store.counts  # the controller really ran
    for x0 in seen:
        torch.testing.assert_close(x0, z0, atol=1e-5, rtol=0)
    torch.testing.assert_close(sdxl.decode_latents(out.latent), sdxl.decode_latents(z0),
                               atol=1e-5, rtol=0)


def _spy_cross(monkeypatch) -> list:
    calls: list = []
    original = InfEditController.edit_cross

    def spy(self, probs, *, store):
        out = original(self, probs, store=store)
        calls.append((self.name, self.step, probs.clone(), out.clone()))
        return out

    monkeypatch.setattr(InfEditController, "edit_cross", spy)
    return calls


@pytest.mark.parametrize("attention, source, target", [
    ("infedit", "a photo of a cat", "a photo of a black cat"),
    ("p2p-replace", "a photo of a cat", "a photo of a dog"),
    ("p2p-reweight", "a photo of a cat", "a photo of a black cat"),
])
def test_attention_controllers_edit_every_sdxl_cross_attention_layer(
        sdxl, plugins, example_image, monkeypatch, attention, source, target):
    calls = _spy_cross(monkeypatch)
    before = dict(sdxl.unet.attn_processors)
    cross = [n for n in before if n.endswith("attn2.processor")]
    assert len(cross) == 17  # 2x1 + 2x2 down, 1x2 mid, 3x2 + 3x1 up transformer layers
    editor = Editor(sdxl, EditConfig(**FAST, attention=attention, options={"p2p-reweight": {"reweight": {"black": 2.0}}}), plugins)
    result = editor.edit(example_image, source, target)
    assert result.image.size == example_image.size
    assert len(calls) == 3 * len(cross)  # every layer, every step
    heads = {m.heads for n, m in sdxl.unet.named_modules() if n.endswith("attn2")}
    assert {c[2].shape[2] for c in calls} == heads and {c[2].shape[-1] for c in calls} == {77}
    black = word_positions(sdxl.tokenizer, target, "black", side="target") if "black" in target else []
    for _, step, probs, out in calls:
        if step < 2:  # cross_replace 0.8 of 3 steps: steps 0 and 1
            if attention == "p2p-replace":  # word swap: the target copies the source's maps
                torch.testing.assert_close(out[1], probs[0])
            else:  # refinement: aligned "a photo of a" copy the source's columns
                torch.testing.assert_close(out[1][..., :5], probs[0][..., :5])
        if attention == "p2p-reweight":  # "black" has no source partner: its own column, doubled
            torch.testing.assert_close(out[1][..., black], 2 * probs[1][..., black])
    after = sdxl.unet.attn_processors
    assert all(after[k] is before[k] for k in before)  # restored


def test_masks_and_local_blend_read_the_backbone_resolution(sdxl, plugins, example_image, monkeypatch):
    resolutions: list[int] = []
    original = InfEditController.attention_maps

    def spy(self, res=16):
        resolutions.append(res)
        return original(self, res)

    monkeypatch.setattr(InfEditController, "attention_maps", spy)
    fast = {k: v for k, v in FAST.items() if k != "working_size"}  # the backbone's own: 256 px
    editor = Editor(sdxl, EditConfig(**fast, opt_start=0.5), plugins)
    result = editor.edit(example_image, "a grayscale photo of an old man",
                         "a colorful photo of an old man", structure_area="masked",
                         mask_words_source=["man"], blend_words_target=["colorful"],
                         mask_threshold_source=0.96)  # random weights: near-flat maps
    assert result.config.working_size == sdxl.default_working_size == 256
    assert set(resolutions) == {sdxl.attention_res}  # mask pass and every local-blend step
    assert len(resolutions) == 1 + 2 * 3
    mask = torch.from_numpy(np.asarray(result.mask, dtype="float32"))
    assert result.mask.size == example_image.size and mask.std() > 0  # a real, non-flat mask


def test_processors_are_restored_after_an_error(sdxl, plugins, example_image):
    before = dict(sdxl.unet.attn_processors)
    editor = Editor(sdxl, EditConfig(**FAST), plugins)
    with pytest.raises(Canceled):
        editor.edit(example_image, "a photo of a man", "a photo of a woman",
                    callback=lambda done, total, preview: False)
    after = sdxl.unet.attn_processors
    assert all(after[k] is before[k] for k in before)
    assert len(sdxl.unet._forward_pre_hooks) == 0


def test_sdxl_at_1024_stores_its_32x32_maps_and_at_2048_its_coarsest():
    """At 1024 px SDXL attends at 64x64 and 32x32 only: masks come from the 32x32 layers."""
    backbone = SimpleNamespace(tokenizer=build_clip_tokenizer(), attention_res=32)
    ctl = InfEditController(backbone=backbone, source_prompt=PROMPT, target_prompt=PROMPT,
                            num_steps=1)
    ctl.layout = BatchLayout(("source", "target", "mutual"), guided=True)
    for latent, levels, stored in (((128, 128), (64, 32), {(32, 32)}),
                                   ((256, 256), (128, 64), {(64, 64)})):
        ctl.store.reset()
        ctl.set_latent_shape(*latent)
        for side in levels:
            ctl.edit_cross(torch.rand(3, 1, 2, side * side, 77).softmax(-1), store=True)
        assert set(ctl.store.sums) == stored
        assert ctl.attention_maps(32).source.shape == (32, 32, 77)


# ------------------------------------------------------------------ command line
def test_spl_edit_and_plugins_offer_the_sdxl_backbones(tmp_path, example_image):
    photo, out = tmp_path / "photo.png", tmp_path / "out.png"
    example_image.resize((160, 120)).save(photo)
    run = CliRunner().invoke(main, ["edit", str(photo), "-s", "a photo of a man", "-t",
                                    "a painting of a man", "-o", str(out), "--backbone",
                                    "tiny-random-sdxl", "--working-size", "128", "--steps", "2",
                                    "--iterations", "3"])
    assert run.exit_code == 0, run.output
    assert Image.open(out).size == (160, 120)
    listing = CliRunner().invoke(main, ["plugins", "--json"])
    assert listing.exit_code == 0
    for name in ("lcm-sdxl", "lcm-lora-sdxl", "tiny-random-sdxl"):
        assert name in listing.output
