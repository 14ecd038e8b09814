"""Built-in backbones: registration, the tiny model's contract, the real loading path, clear missing-weights errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import NO_HUB

from spl_backbones.devices import resolve_device, resolve_dtype
from spl_backbones.sd15_random import SD15_TEXT, SD15_UNET, SD15_VAE, SD15Random
from spl_backbones.tiny import TINY_UNET, TinyRandom
from spl_sdk.errors import ConfigError, ImageError, ModelNotFoundError

BUILT_IN = {"lcm-dreamshaper-v7", "lcm-lora-sd15", "tiny-random-sd15", "random-sd15"}


def _state(backbone) -> dict[str, torch.Tensor]:
    return {f"{i}.{k}": v for i, m in enumerate(backbone.modules()) for k, v in m.state_dict().items()}


def test_built_in_backbones_are_registered(plugins):
    assert BUILT_IN <= set(plugins.names("backbone"))
    assert plugins.backbone("lcm-dreamshaper-v7").default_model == "SimianLuo/LCM_Dreamshaper_v7"
    assert plugins.backbone("lcm-lora-sd15").default_model == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert plugins.backbone("tiny-random-sd15").default_working_size == 256


# ------------------------------------------------------------------ tiny-random-sd15
def test_tiny_is_seeded_and_leaves_the_global_rng_alone(tiny_backbone):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    again = TinyRandom.load(device="cpu")
    assert torch.equal(torch.rand(3), expected)
    a, b = _state(tiny_backbone), _state(again)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert tiny_backbone.device == torch.device("cpu") and tiny_backbone.dtype == torch.float32
    assert not any(p.requires_grad for m in tiny_backbone.modules() for p in m.parameters())


def test_tiny_mirrors_the_sd15_block_layout():
    for key in ("down_block_types", "up_block_types", "layers_per_block"):
        assert TINY_UNET[key] == SD15_UNET[key]


def test_tiny_has_16x16_cross_attention_in_down_and_up_blocks_at_256px(tiny_backbone):
    sizes: dict[str, int] = {}
    hooks = [m.register_forward_hook(lambda mod, args, out, n=n: sizes.__setitem__(n, args[0].shape[1]))
             for n, m in tiny_backbone.unet.named_modules() if n.endswith("attn2")]
    try:
        emb = tiny_backbone.encode_prompts(["a cat"])
        tiny_backbone.predict(torch.zeros(1, 4, 32, 32), 500, emb)
    finally:
        for h in hooks:
            h.remove()
    at16 = {n.split(".")[0] for n, s in sizes.items() if s == 16 * 16}
    assert at16 == {"down_blocks", "up_blocks"}
    assert {s for s in sizes.values()} == {32 * 32, 16 * 16, 8 * 8, 4 * 4}


def test_prompts_are_padded_with_the_end_token_to_77(tiny_backbone):
    emb = tiny_backbone.encode_prompts(["a photo of a cat", ""])
    assert emb.embeddings.shape == (2, 77, 32) and emb.extras == {}
    ids = torch.tensor([[49406, 320, 1125, 539, 320, 2368] + [49407] * 71])
    with torch.no_grad():
        expected = tiny_backbone.text_encoder(ids)[0]
    torch.testing.assert_close(emb.embeddings[:1], expected)
    assert tiny_backbone.tokenize("a photo of a cat") == [49406, 320, 1125, 539, 320, 2368, 49407]


@pytest.mark.parametrize("height, width", [(256, 256), (192, 256)])
def test_encode_and_decode_shapes(tiny_backbone, height, width):
    image = torch.rand(1, 3, height, width) * 2 - 1
    z = tiny_backbone.encode_image(image)
    assert z.shape == (1, 4, height // 8, width // 8) and z.dtype == torch.float32
    assert torch.equal(z, tiny_backbone.encode_image(image))  # posterior mean: deterministic
    out = tiny_backbone.decode_latents(z)
    assert out.shape == image.shape and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1


def test_encode_refuses_sizes_that_are_not_multiples_of_8(tiny_backbone):
    with pytest.raises(ImageError, match="multiples of 8"):
        tiny_backbone.encode_image(torch.zeros(1, 3, 100, 64))


def test_predict_runs_one_batch_of_six(tiny_backbone):
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(6, 4, 32, 32, generator=g)
    emb = tiny_backbone.encode_prompts(["", "", "", "a cat", "a dog", "a cat"])
    out = tiny_backbone.predict(latents, torch.tensor(500), emb)
    assert out.shape == latents.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
    single = tiny_backbone.predict(latents[4:5], 500, emb.rows([4]))
    torch.testing.assert_close(out[4:5], single, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(out[3], out[4])  # the prompt matters


def test_predict_noise_is_a_deprecated_alias_taking_bare_embeddings(tiny_backbone):
    latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    cond = tiny_backbone.encode_prompts(["a cat", "a dog"])
    with pytest.warns(DeprecationWarning, match="predict_noise is deprecated"):
        old = tiny_backbone.predict_noise(latents, 500, cond.embeddings)
    torch.testing.assert_close(old, tiny_backbone.predict(latents, 500, cond), atol=0, rtol=0)


def test_conditioning_rows_and_cat_keep_every_tensor_aligned():
    from spl_sdk.components import Conditioning

    cond = Conditioning(torch.arange(3.0).view(3, 1, 1), {"pooled": torch.arange(3.0).view(3, 1) * 10})
    picked = cond.rows([2, 0])
    assert picked.embeddings.flatten().tolist() == [2.0, 0.0]
    assert picked.extras["pooled"].flatten().tolist() == [20.0, 0.0]
    both = Conditioning.cat([picked, cond.rows(slice(1, 2))])
    assert len(both) == 3 and both.extras["pooled"].flatten().tolist() == [20.0, 0.0, 10.0]
    with pytest.raises(ValueError, match="same extras"):
        Conditioning.cat([cond, Conditioning(torch.zeros(1, 1, 1))])


def test_sd15_backbones_declare_the_contract(plugins):
    for name in ("lcm-dreamshaper-v7", "lcm-lora-sd15", "random-sd15", "tiny-random-sd15"):
        cls = plugins.backbone(name)
        assert (cls.family, cls.prediction_type, cls.default_method) == ("sd15", "epsilon", "infedit")
        assert {"epsilon", "alphas-cumprod", "attention-processors"} <= cls.capabilities


def test_outputs_work_in_later_autograd(tiny_backbone):
    # no_grad inside, not inference_mode: inference tensors cannot be saved for backward.
    decoded = tiny_backbone.decode_latents(torch.zeros(1, 4, 8, 8))
    edited = decoded.clone().requires_grad_(True)
    ((edited - decoded) ** 2 * decoded).sum().backward()
    assert edited.grad is not None and not decoded.requires_grad


def test_scheduler_is_lcm_with_the_sd_noise_schedule(tiny_backbone):
    cfg = tiny_backbone.scheduler.config
    assert type(tiny_backbone.scheduler).__name__ == "LCMScheduler"
    assert (cfg.beta_start, cfg.beta_end, cfg.beta_schedule, cfg.num_train_timesteps) == (
        0.00085, 0.012, "scaled_linear", 1000)
    assert tiny_backbone.vae_scale_factor == 8


# ------------------------------------------------------------------ the real loading path
@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory, tiny_backbone) -> Path:
    return tiny_backbone.save_pretrained(tmp_path_factory.mktemp("tiny") / "model")


def test_save_pretrained_writes_the_diffusers_layout(saved_tiny):
    assert {p.name for p in saved_tiny.iterdir()} >= {"unet", "vae", "text_encoder", "tokenizer",
                                                      "scheduler", "model_index.json"}
    assert (saved_tiny / "tokenizer" / "vocab.json").exists()
    assert json.loads((saved_tiny / "model_index.json").read_text())["unet"] == [
        "diffusers", "UNet2DConditionModel"]


def test_lcm_loader_loads_the_saved_tiny_model_identically(plugins, saved_tiny, tiny_backbone):
    loaded = plugins.backbone("lcm-dreamshaper-v7").load(str(saved_tiny), device="cpu")
    prompts = ["a photo of a cat", "a black cat on a red mat"]
    assert loaded.tokenize(prompts[1]) == tiny_backbone.tokenize(prompts[1])
    emb = tiny_backbone.encode_prompts(prompts)
    torch.testing.assert_close(loaded.encode_prompts(prompts).embeddings, emb.embeddings, atol=0, rtol=0)
    latents = torch.randn(2, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(loaded.predict(latents, 700, emb),
                               tiny_backbone.predict(latents, 700, emb), atol=0, rtol=0)
    torch.testing.assert_close(loaded.decode_latents(latents), tiny_backbone.decode_latents(latents),
                               atol=0, rtol=0)
    public = lambda s: {k: v for k, v in s.config.items() if not k.startswith("_")}  # noqa: E731
    assert public(loaded.scheduler) == public(tiny_backbone.scheduler)
    again = TinyRandom.load(str(saved_tiny), device="cpu")  # tiny-random-sd15 reloads its own folders
    torch.testing.assert_close(again.predict(latents, 700, emb),
                               tiny_backbone.predict(latents, 700, emb), atol=0, rtol=0)


def test_a_folder_missing_a_part_names_it(plugins, tmp_path, saved_tiny):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "unet").symlink_to(saved_tiny / "unet")
    with pytest.raises(ModelNotFoundError) as err:
        plugins.backbone("lcm-dreamshaper-v7").load(str(partial), device="cpu")
    assert "lacks the subfolder(s) vae, text_encoder, tokenizer, scheduler" in str(err.value)
    for sub in ("vae", "text_encoder", "scheduler"):
        (partial / sub).symlink_to(saved_tiny / sub)
    (partial / "tokenizer").mkdir()  # empty: transformers would return a useless stub tokenizer
    with pytest.raises(ModelNotFoundError, match="tokenizer' could not be loaded"):
        plugins.backbone("lcm-dreamshaper-v7").load(str(partial), device="cpu")


def test_a_missing_local_folder_is_one_sentence(plugins, tmp_path):
    with pytest.raises(ModelNotFoundError) as err:
        plugins.backbone("lcm-dreamshaper-v7").load(str(tmp_path / "nope"), device="cpu")
    message = str(err.value)
    assert "does not exist" in message and "\n" not in message and message.endswith(".")
    with pytest.raises(ModelNotFoundError, match="built in code"):
        TinyRandom.load("some/hub-id")


def test_lcm_lora_fuses_a_local_lora_into_the_unet(tiny_backbone, saved_tiny, tmp_path):
    from diffusers.loaders import StableDiffusionLoraLoaderMixin
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from spl_backbones.lora import LCMLoRASD15

    reference = TinyRandom.build_components()["unet"]
    with torch.random.fork_rng():
        torch.manual_seed(5)
        reference.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                         target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    lora = convert_state_dict_to_diffusers(get_peft_model_state_dict(reference))
    StableDiffusionLoraLoaderMixin.save_lora_weights(tmp_path / "lora", unet_lora_layers=lora)

    fused = LCMLoRASD15.from_pretrained(saved_tiny, adapter=tmp_path / "lora", device="cpu")
    emb = tiny_backbone.encode_prompts(["a cat", "a dog"])
    latents = torch.randn(2, 4, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference(latents, 500, encoder_hidden_states=emb.embeddings).sample
    out = fused.predict(latents, 500, emb)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    assert (out - tiny_backbone.predict(latents, 500, emb)).abs().max() > 1e-2
    attn = fused.unet.down_blocks[1].attentions[0].transformer_blocks[0].attn2
    assert type(attn.to_q) is torch.nn.Linear  # peft layers merged and removed
    assert type(fused.scheduler).__name__ == "LCMScheduler"


# ------------------------------------------------------------------ no weights, no network
MISSING_SCRIPT = textwrap.dedent("""
    import json, os, time
    from diffusers import AutoencoderKL, LCMScheduler, UNet2DConditionModel  # imports before the clock
    from transformers import CLIPTextModel, CLIPTokenizer
    import huggingface_hub.constants
    from spl_sdk.plugins import Plugins
    from spl_sdk.errors import SplError
    plugins = Plugins()
    results = {}
    for offline in (False, True):
        if offline:  # as if started with HF_HUB_OFFLINE=1 (saves a second interpreter start)
            os.environ["HF_HUB_OFFLINE"] = "1"
            huggingface_hub.constants.HF_HUB_OFFLINE = True
        for name in ("lcm-dreamshaper-v7", "lcm-lora-sd15", "lcm-sdxl", "lcm-lora-sdxl"):
            start = time.perf_counter()
            try:
                plugins.backbone(name).load(device="cpu")
                outcome = ["loaded", 0.0, ""]
            except SplError as exc:
                outcome = [type(exc).__name__, time.perf_counter() - start, str(exc)]
            results[name + (" offline" if offline else "")] = outcome
    print(json.dumps(results))
""")


def _one_sentence(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message and message.endswith(".")
    assert message.count(". ") == 0, message  # a single sentence


@pytest.mark.slow
def test_missing_weights_without_network_fail_fast_with_one_sentence(tmp_path):
    # The Hub cannot be reached (its address is a refusing loopback port, on any machine): that is
    # the situation under test; HF_HOME is empty.
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    environ["HF_HOME"] = str(tmp_path / "hf_home")
    environ["HF_ENDPOINT"] = NO_HUB
    proc = subprocess.run([sys.executable, "-c", MISSING_SCRIPT], env=environ, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, (kind, seconds, message) in results.items():
        assert kind == "ModelNotFoundError" and seconds < 5, (name, results)
        _one_sentence(message)
        assert "--model" in message and "hf download" in message
    message = results["lcm-dreamshaper-v7"][2]
    assert "'SimianLuo/LCM_Dreamshaper_v7'" in message and "cannot be reached" in message
    assert "hf download SimianLuo/LCM_Dreamshaper_v7" in message
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in results["lcm-lora-sd15"][2]
    for name, extra in (("lcm-sdxl", "latent-consistency/lcm-sdxl"),
                        ("lcm-lora-sdxl", "latent-consistency/lcm-lora-sdxl")):
        assert "stabilityai/stable-diffusion-xl-base-1.0" in results[name][2] and extra in results[name][2]
    assert "HF_HUB_OFFLINE" in results["lcm-dreamshaper-v7 offline"][2]


# ------------------------------------------------------------------ device, dtype, offload
def test_device_and_dtype_resolution(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("spl_backbones.devices._mps_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("mps")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ConfigError, match="no usable CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="not a torch device"):
        resolve_device("gpu0")
    with pytest.raises(ConfigError, match="dtype 'float8'"):
        resolve_dtype("float8")
    monkeypatch.setattr("spl_backbones.devices._mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_cpu_offload_on_the_cpu_is_a_no_op():
    backbone = TinyRandom.load(device="cpu", cpu_offload=True)
    assert backbone.offload_hooks == [] and backbone.device.type == "cpu"


def test_offload_hooks_keep_one_model_on_the_execution_device(tiny_backbone):
    from spl_backbones.offload import keep_only, offload_hooks

    modules = [torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)]
    hooks = offload_hooks(modules, torch.device("cpu"))  # the mechanism; on a GPU device="cuda"
    assert len(hooks) == 2
    keep_only(hooks, 1)
    assert modules[1](torch.ones(1, 2)).shape == (1, 2)


def test_cpu_offload_without_accelerate_is_a_clear_error(monkeypatch):
    from spl_backbones.offload import offload_hooks

    monkeypatch.setitem(sys.modules, "accelerate", None)
    with pytest.raises(ConfigError, match="needs the 'accelerate' package"):
        offload_hooks([torch.nn.Linear(2, 2)], torch.device("cuda"))


# ------------------------------------------------------------------ random-sd15 (configs only)
def test_sd15_random_uses_the_real_sd15_configs():
    assert SD15Random.unet_config is SD15_UNET and SD15Random.vae_config is SD15_VAE
    assert SD15_UNET["block_out_channels"] == (320, 640, 1280, 1280)
    assert (SD15_UNET["cross_attention_dim"], SD15_UNET["attention_head_dim"]) == (768, 8)
    assert SD15_VAE["block_out_channels"] == (128, 256, 512, 512)
    assert (SD15_TEXT["hidden_size"], SD15_TEXT["num_hidden_layers"],
            SD15_TEXT["num_attention_heads"], SD15_TEXT["intermediate_size"]) == (768, 12, 12, 3072)
    import inspect

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig

    # every key is a real constructor argument (nothing silently ignored); no weights are built
    for cls, cfg in ((UNet2DConditionModel, SD15_UNET), (AutoencoderKL, SD15_VAE)):
        assert set(cfg) <= set(inspect.signature(cls.__init__).parameters)
    assert CLIPTextConfig(**SD15_TEXT).hidden_size == 768
