"""Flow backbones (SD3, FLUX.1): tiny models, parity with the diffusers pipelines, save/load, loading errors."""

from __future__ import annotations

import pytest
import torch

from spl_backbones import loading
from spl_backbones.flow_backbone import calculate_shift
from spl_backbones.flux import FluxDev, FluxSchnell, image_ids, pack, unpack
from spl_backbones.sd3 import SD3Backbone
from spl_backbones.t5_tokenizer import build_t5_tokenizer
from spl_backbones.tiny_flow import TinyRandomFlux, TinyRandomSD3
from spl_methods.flow_sample import initial_noise, text_to_image
from spl_sdk.errors import ImageError, ModelNotFoundError


def _sd3_pipeline(b):
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline(transformer=b.transformer, scheduler=b.scheduler, vae=b.vae,
                                    text_encoder=b.text_encoder, tokenizer=b.tokenizer,
                                    text_encoder_2=b.text_encoder_2, tokenizer_2=b.tokenizer_2,
                                    text_encoder_3=b.text_encoder_3, tokenizer_3=b.tokenizer_3)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _flux_pipeline(b):
    from diffusers import FluxPipeline

    pipe = FluxPipeline(transformer=b.transformer, scheduler=b.scheduler, vae=b.vae,
                        text_encoder=b.text_encoder, tokenizer=b.tokenizer,
                        text_encoder_2=b.text_encoder_2, tokenizer_2=b.tokenizer_2)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ------------------------------------------------------------------ registration and attributes
def test_flow_backbones_are_registered_with_their_contract(plugins):
    names = set(plugins.names("backbone"))
    assert {"sd35-medium", "flux-dev", "flux-schnell", "tiny-random-sd3", "tiny-random-flux"} <= names
    assert plugins.backbone("sd35-medium").default_model == "stabilityai/stable-diffusion-3.5-medium"
    assert plugins.backbone("flux-dev").default_model == "black-forest-labs/FLUX.1-dev"
    assert plugins.backbone("flux-schnell").default_model == "black-forest-labs/FLUX.1-schnell"
    for name, family in (("sd35-medium", "sd3"), ("flux-dev", "flux"), ("tiny-random-sd3", "sd3"),
                         ("tiny-random-flux", "flux")):
        cls = plugins.backbone(name)
        assert (cls.family, cls.prediction_type, cls.default_method) == (family, "flow", "flowedit")
        assert "flow" in cls.capabilities and "unet-cross-attention" not in cls.capabilities
    assert "embedded-guidance" in FluxDev.capabilities and "embedded-guidance" not in FluxSchnell.capabilities
    assert SD3Backbone.gated and FluxDev.gated and not FluxSchnell.gated


def test_tiny_models_are_seeded_and_leave_the_global_rng_alone(sd3):
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    again = TinyRandomSD3.load(device="cpu")
    assert torch.equal(torch.rand(2), expected)
    for m1, m2 in zip(sd3.modules(), again.modules(), strict=True):
        s1, s2 = m1.state_dict(), m2.state_dict()
        assert all(torch.equal(s1[k], s2[k]) for k in s1)
    # the CLIP encoders are seeded apart (same config, different weights)
    assert not torch.equal(sd3.text_encoder.text_projection.weight, sd3.text_encoder_2.text_projection.weight)


def test_latents_have_16_channels_and_the_vae_applies_scale_and_shift(sd3, flux):
    image = torch.rand(1, 3, 64, 96) * 2 - 1
    for b, scale, shift in ((sd3, 1.5305, 0.0609), (flux, 0.3611, 0.1159)):
        z = b.encode_image(image)
        assert z.shape == (1, 16, 8, 12) and z.dtype == torch.float32
        raw = b.vae.encode(image).latent_dist.mean
        torch.testing.assert_close(z, (raw - shift) * scale)
        torch.testing.assert_close(b.decode_latents(z), b.vae.decode(raw).sample.clamp(-1, 1))
    with pytest.raises(ImageError, match="multiples of 16"):
        flux.encode_image(torch.zeros(1, 3, 64, 72))


def test_flux_packing_round_trips_and_matches_the_pipeline():
    from diffusers import FluxPipeline

    z = torch.randn(2, 16, 6, 10)
    packed = pack(z)
    assert packed.shape == (2, 15, 64)
    torch.testing.assert_close(packed, FluxPipeline._pack_latents(z, 2, 16, 6, 10), rtol=0, atol=0)
    torch.testing.assert_close(unpack(packed, 6, 10), z, rtol=0, atol=0)
    torch.testing.assert_close(image_ids(6, 10, torch.device("cpu"), torch.float32),
                               FluxPipeline._prepare_latent_image_ids(2, 3, 5, "cpu", torch.float32))


def test_flux_schedule_uses_the_resolution_dependent_shift(flux):
    small = flux.sigmas(8, latent_shape=(1, 16, 32, 32))   # 256 tokens: mu = 0.5
    large = flux.sigmas(8, latent_shape=(1, 16, 128, 128))  # 4096 tokens: mu = 1.15
    assert calculate_shift(256) == pytest.approx(0.5) and calculate_shift(4096) == pytest.approx(1.15)
    assert len(small) == 9 and small[0] == pytest.approx(1.0) and small[-1] == 0.0
    assert all(b > a for a, b in zip(small[1:-1], large[1:-1], strict=True))  # larger images: later times


# ------------------------------------------------------------------ parity with diffusers
def test_sd3_velocity_equals_the_pipeline(sd3):
    pipe = _sd3_pipeline(sd3)
    z = torch.randn(1, 16, 16, 16, generator=torch.Generator().manual_seed(1))
    # one step from sigma 1 to 0: the pipeline returns z - v
    out = pipe("a photo of a cat", num_inference_steps=1, guidance_scale=1.0, latents=z.clone(),
               output_type="latent", max_sequence_length=sd3.max_sequence_length).images
    t = sd3.timesteps(1, latent_shape=z.shape)[0]
    v = sd3.predict(z, t, sd3.encode_prompts(["a photo of a cat"]))
    torch.testing.assert_close(v, z - out, rtol=1e-5, atol=1e-5)
    # the prompt matters: another prompt gives another velocity
    assert (sd3.predict(z, t, sd3.encode_prompts(["a red house"])) - v).abs().max() > 1e-3


def test_flux_velocity_equals_the_pipeline_with_embedded_guidance(flux):
    pipe = _flux_pipeline(flux)
    z = torch.randn(1, 16, 16, 16, generator=torch.Generator().manual_seed(2))
    out = pipe("a photo of a cat", num_inference_steps=1, guidance_scale=4.0, latents=pack(z),
               output_type="latent", height=128, width=128,
               max_sequence_length=flux.max_sequence_length).images
    t = flux.timesteps(1, latent_shape=z.shape)[0]
    cond = flux.encode_prompts(["a photo of a cat"])
    v = flux.predict(z, t, cond, guidance=4.0)
    torch.testing.assert_close(pack(v), pack(z) - out, rtol=1e-5, atol=1e-5)
    # guidance is an input, per row: a batch with two scales equals two single calls
    both = flux.predict(torch.cat([z, z]), t, cond.rows([0, 0]), guidance=[4.0, 1.0])
    torch.testing.assert_close(both[:1], v, rtol=1e-5, atol=1e-5)
    assert (both[1:] - v).abs().max() > 1e-4


def test_sd3_text_to_image_reproduces_the_pipeline(sd3):
    pipe = _sd3_pipeline(sd3)
    kw = {"height": 128, "width": 128}
    expected = pipe("a cat on a sofa", num_inference_steps=4, guidance_scale=4.5,
                    generator=torch.Generator("cpu").manual_seed(7), output_type="latent",
                    max_sequence_length=sd3.max_sequence_length, **kw).images
    ours = text_to_image(sd3, "a cat on a sofa", steps=4, guidance=4.5, seed=7, **kw)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)
    assert (ours - initial_noise(sd3, 128, 128, 7)).abs().mean() > 1e-2  # it did sample


def test_flux_text_to_image_reproduces_the_pipeline(flux):
    pipe = _flux_pipeline(flux)
    kw = {"height": 128, "width": 160}
    expected = pipe("a cat on a sofa", num_inference_steps=4, guidance_scale=3.5,
                    generator=torch.Generator("cpu").manual_seed(7), output_type="latent",
                    max_sequence_length=flux.max_sequence_length, **kw).images
    ours = text_to_image(flux, "a cat on a sofa", steps=4, guidance=3.5, seed=7, **kw)
    torch.testing.assert_close(pack(ours), expected, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ save / load
@pytest.mark.parametrize("cls", [TinyRandomSD3, TinyRandomFlux])
def test_save_pretrained_loads_back_identically(cls, sd3, flux, tmp_path):
    b = sd3 if cls is TinyRandomSD3 else flux
    folder = b.save_pretrained(tmp_path / "model")
    again = cls.load(str(folder), device="cpu")
    for m1, m2 in zip(b.modules(), again.modules(), strict=True):
        s1, s2 = m1.state_dict(), m2.state_dict()
        assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    prompts = ["a photo of a cat", "A colorful portrait, 4k"]
    c1, c2 = b.encode_prompts(prompts), again.encode_prompts(prompts)
    torch.testing.assert_close(c1.embeddings, c2.embeddings, rtol=0, atol=0)
    public = [{k: v for k, v in s.config.items() if not k.startswith("_")} for s in (again.scheduler, b.scheduler)]
    assert public[0] == public[1]
    assert again.tokenize("a photo of a cat") == [49406, 320, 1125, 539, 320, 2368, 49407]
    # the real family class reads the same folder (the path a downloaded model takes); it pads T5
    # to its own longer length, so compare the pooled CLIP output
    real = (SD3Backbone if cls is TinyRandomSD3 else FluxDev).load(str(folder), device="cpu")
    torch.testing.assert_close(real.encode_prompts(prompts).extras["pooled"], c1.extras["pooled"],
                               rtol=0, atol=0)


def test_t5_stand_in_has_t5s_layout_and_survives_save_load(tmp_path):
    from transformers import T5Tokenizer

    tok = build_t5_tokenizer()
    assert len(tok) == 32100 and (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    ids = tok("a photo of a cat").input_ids
    assert tok.convert_ids_to_tokens(ids) == ["\u2581a", "\u2581photo", "\u2581of", "\u2581a", "\u2581cat", "</s>"]
    assert tok.convert_tokens_to_ids("<extra_id_0>") == 32099
    tok.save_pretrained(tmp_path)
    assert T5Tokenizer.from_pretrained(tmp_path)("a photo of a cat").input_ids == ids


# ------------------------------------------------------------------ loading errors
def test_missing_folder_parts_are_one_sentence(tmp_path):
    (tmp_path / "transformer").mkdir()
    with pytest.raises(ModelNotFoundError, match="lacks the subfolder") as info:
        FluxDev.load(str(tmp_path), device="cpu")
    assert "\n" not in str(info.value)


def test_a_gated_repository_says_accept_the_license_and_set_hf_token(monkeypatch):
    import httpx2
    from huggingface_hub.errors import GatedRepoError

    def loader(model, local_files_only=False, **kw):
        if local_files_only:
            raise OSError("not cached")
        try:
            raise GatedRepoError("401 Client Error. Cannot access gated repo for url ...",
                                 response=httpx2.Response(401, request=httpx2.Request("GET", "https://x")))
        except GatedRepoError as exc:  # diffusers re-raises as OSError with the cause attached
            raise OSError(f"{model} is not a local folder and is not a valid model identifier") from exc

    monkeypatch.setattr(loading, "hub_reachable", lambda: True)
    monkeypatch.setattr(loading, "offline", lambda: False)
    with pytest.raises(ModelNotFoundError) as info:
        loading.load_part(loader, "black-forest-labs/FLUX.1-dev", "transformer", gated=True)
    message = str(info.value)
    assert "license" in message and "HF_TOKEN" in message and "huggingface.co/black-forest-labs/FLUX.1-dev" in message
    assert "\n" not in message and message.count(". ") == 0


def test_flux_dev_offline_without_weights_is_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="FLUX.1-dev") as info:
        FluxDev.load(device="cpu")
    assert "\n" not in str(info.value)


def test_schnell_layout_runs_without_guidance_and_matches_the_pipeline():
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

    from spl_backbones.tiny_flow import TINY_FLUX_TRANSFORMER
    from spl_methods.velocity import GuidedVelocity

    parts = TinyRandomFlux.build_components()
    parts["transformer"] = TinyRandomFlux.seeded(3, lambda: FluxTransformer2DModel(
        **{**TINY_FLUX_TRANSFORMER, "guidance_embeds": False}))
    parts["scheduler"] = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    schnell = FluxSchnell(**parts, device=torch.device("cpu"), dtype=torch.float32)
    schnell.max_sequence_length = TinyRandomFlux.max_sequence_length
    pipe = _flux_pipeline(schnell)
    expected = pipe("a cat", num_inference_steps=3, guidance_scale=0.0, height=64, width=64,
                    generator=torch.Generator("cpu").manual_seed(3), output_type="latent",
                    max_sequence_length=schnell.max_sequence_length).images
    ours = text_to_image(schnell, "a cat", steps=3, guidance=1.0, seed=3, height=64, width=64)
    torch.testing.assert_close(pack(ours), expected, rtol=1e-4, atol=1e-4)
    assert schnell.sigmas(3, latent_shape=(1, 16, 8, 8))[:3] == pytest.approx([1.0, 2 / 3, 1 / 3])  # no shift
    # unguided branches: one row each, no classifier-free batch
    velocity = GuidedVelocity(schnell, ["a cat", "a dog"], [1.0, 1.0])
    assert len(velocity.cond) == 2 and not velocity.cfg


def test_offload_hooks_follow_every_part_of_a_flow_backbone():
    from spl_backbones.offload import offload_hooks

    b = TinyRandomSD3.load(device="cpu")
    z = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(4))
    cond = b.encode_prompts(["a cat"])
    expected = b.predict(z, 500.0, cond)
    b.offload_hooks = offload_hooks(b.modules(), torch.device("cpu"))  # the mechanism; "cuda" on a GPU
    assert len(b.offload_hooks) == 5  # three text encoders, transformer, VAE
    torch.testing.assert_close(b.predict(z, 500.0, b.encode_prompts(["a cat"])), expected)
    assert b.decode_latents(b.encode_image(torch.zeros(1, 3, 32, 32))).shape == (1, 3, 32, 32)
    assert TinyRandomFlux.load(device="cpu", cpu_offload=True).offload_hooks == []  # a no-op on the CPU
