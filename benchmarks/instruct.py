"""Instruction-edit models at full size with random weights: parameter counts, bfloat16 memory, one step.

    python benchmarks/instruct.py count                              # any machine: meta tensors, no memory
    python benchmarks/instruct.py step --model flux2-klein --size 128 --text-tokens 64   # fits a 24 GiB CPU
    python benchmarks/instruct.py step --model flux-kontext-dev --size 1024 --device cuda --dtype bfloat16
    python benchmarks/instruct.py step --model qwen-image-edit --size 1024 --device cuda --dtype bfloat16
    python benchmarks/instruct.py step --model flux2-klein --size 1024 --device cuda --dtype bfloat16
    python benchmarks/instruct.py gpu                                # every step row above, each in its own process

The configs below are the published ``config.json`` values of each part (FLUX.1 Kontext
[dev] shares FLUX.1 [dev]'s transformer, CLIP-L, T5-XXL and VAE; Qwen-Image-Edit's
transformer and video VAE are diffusers' defaults for those classes, its text encoder is
Qwen2.5-VL-7B-Instruct; FLUX.2 [klein] 4B's transformer and Qwen3-4B are as their
repositories publish them, the VAE is diffusers' ``AutoencoderKLFlux2`` default). Weights
are random: built on the meta device (``count``), or filled with N(0, 0.02) on the target
device (``step``), so nothing is downloaded and compute and memory are the real models'.
``step`` times one call of the transformer exactly as the ``instruct`` method makes it:
the latent's tokens with the photo's tokens appended, the text tokens the pipeline pads
to, the model's guidance batch (Qwen: conditional and negative rows). On a GPU, the
whole edit with real weights is the CLI (bfloat16 by default on CUDA; ``nf4`` needs
bitsandbytes):

    spl edit photo.jpg -t "make it night" --backbone flux-kontext-dev -o night.png
    spl edit photo.jpg -t "make it night" --backbone flux-kontext-dev --option flux-kontext-dev.quantize=nf4 -o night.png
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

# FLUX.1 Kontext [dev] (as FLUX.1 [dev]): published config.json of each subfolder
CLIP_L = {"vocab_size": 49408, "max_position_embeddings": 77, "hidden_size": 768, "intermediate_size": 3072,
          "num_hidden_layers": 12, "num_attention_heads": 12, "projection_dim": 768, "hidden_act": "quick_gelu"}
T5_XXL = {"vocab_size": 32128, "d_model": 4096, "d_ff": 10240, "d_kv": 64, "num_layers": 24, "num_heads": 64,
          "relative_attention_num_buckets": 32, "feed_forward_proj": "gated-gelu", "is_encoder_decoder": False}
FLUX_VAE = {"latent_channels": 16, "down_block_types": ("DownEncoderBlock2D",) * 4,
            "up_block_types": ("UpDecoderBlock2D",) * 4, "block_out_channels": (128, 256, 512, 512),
            "layers_per_block": 2, "use_quant_conv": False, "use_post_quant_conv": False}
KONTEXT = {"patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38, "attention_head_dim": 128,
           "num_attention_heads": 24, "joint_attention_dim": 4096, "pooled_projection_dim": 768,
           "guidance_embeds": True, "axes_dims_rope": (16, 56, 56)}
# Qwen-Image-Edit 2509/2511: 60-layer MMDiT, Qwen2.5-VL-7B-Instruct, video VAE
QWEN_TRANSFORMER = {"patch_size": 2, "in_channels": 64, "out_channels": 16, "num_layers": 60,
                    "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 3584,
                    "axes_dims_rope": (16, 56, 56)}
QWEN_VL_TEXT = {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
                "num_key_value_heads": 4, "vocab_size": 152064, "tie_word_embeddings": False,
                "rope_scaling": {"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"}}
QWEN_VL_VISION = {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
                  "out_hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
                  "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31]}
QWEN_VAE = {"base_dim": 96, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2,
            "temperal_downsample": [False, True, True]}
# FLUX.2 [klein] 4B: 5 double + 20 single blocks, Qwen3-4B (three hidden layers side by side: 3 x 2560)
KLEIN = {"patch_size": 1, "in_channels": 128, "num_layers": 5, "num_single_layers": 20, "attention_head_dim": 128,
         "num_attention_heads": 24, "joint_attention_dim": 7680, "timestep_guidance_channels": 256,
         "mlp_ratio": 3.0, "axes_dims_rope": (32, 32, 32, 32), "rope_theta": 2000, "guidance_embeds": False}
QWEN3_4B = {"hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36, "num_attention_heads": 32,
            "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "tie_word_embeddings": True}
MODELS = ("flux-kontext-dev", "qwen-image-edit", "flux2-klein")
# text tokens the pipelines pad to (Kontext: T5 512; klein: 512) or typically produce (Qwen: the
# template, a 384^2 px photo's 196 vision tokens and a short instruction, minus 64 dropped)
TEXT_TOKENS = {"flux-kontext-dev": 512, "qwen-image-edit": 300, "flux2-klein": 512}


def parts(model: str) -> dict[str, Any]:
    """Builders of each part of a full-size model (call them under a device context)."""
    from diffusers import (
        AutoencoderKL,
        AutoencoderKLFlux2,
        AutoencoderKLQwenImage,
        Flux2Transformer2DModel,
        FluxTransformer2DModel,
        QwenImageTransformer2DModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen3Config,
        Qwen3ForCausalLM,
        T5Config,
        T5EncoderModel,
    )

    if model == "flux-kontext-dev":
        return {"transformer": lambda: FluxTransformer2DModel(**KONTEXT),
                "text_encoder (CLIP-L)": lambda: CLIPTextModel(CLIPTextConfig(**CLIP_L)),
                "text_encoder_2 (T5-XXL)": lambda: T5EncoderModel(T5Config(**T5_XXL)),
                "vae": lambda: AutoencoderKL(**FLUX_VAE)}
    if model == "qwen-image-edit":
        return {"transformer": lambda: QwenImageTransformer2DModel(**QWEN_TRANSFORMER),
                "text_encoder (Qwen2.5-VL-7B)": lambda: Qwen2_5_VLForConditionalGeneration(
                    Qwen2_5_VLConfig(text_config=QWEN_VL_TEXT, vision_config=QWEN_VL_VISION, vocab_size=152064)),
                "vae": lambda: AutoencoderKLQwenImage(**QWEN_VAE)}
    return {"transformer": lambda: Flux2Transformer2DModel(**KLEIN),
            "text_encoder (Qwen3-4B)": lambda: Qwen3ForCausalLM(Qwen3Config(**QWEN3_4B)),
            "vae": lambda: AutoencoderKLFlux2()}


def count() -> dict[str, Any]:
    """Parameters per part and bfloat16 weight memory of each model (meta tensors: no memory, any machine)."""
    import torch

    rows: dict[str, Any] = {}
    for model in MODELS:
        sizes = {}
        for name, build in parts(model).items():
            with torch.device("meta"):
                module = build()
            sizes[name] = sum(p.numel() for p in module.parameters())  # tied weights counted once
        total = sum(sizes.values())
        rows[model] = {"params_billion": {k: round(v / 1e9, 3) for k, v in sizes.items()},
                       "total_billion": round(total / 1e9, 2),
                       "bf16_weights_gib": round(total * 2 / 2**30, 1),
                       "transformer_bf16_gib": round(sizes["transformer"] * 2 / 2**30, 1),
                       # bitsandbytes NF4: 4 bits per weight plus a float32 scale per 64 (about 0.53 byte)
                       "transformer_nf4_gib_about": round(sizes["transformer"] * 0.53 / 2**30, 1)}
    return rows


def random_transformer(model: str, device: str, dtype: Any) -> Any:
    """The model's transformer with N(0, 0.02) weights on ``device`` (built on meta: no float32 copy)."""
    import torch

    with torch.device("meta"):
        module = parts(model)["transformer"]()
    module = module.to_empty(device=device).to(dtype)
    gen = torch.Generator(device).manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.02, generator=gen)
        for b in module.buffers():
            if b.is_floating_point():
                b.zero_()
    return module.requires_grad_(False).eval()


def call_inputs(model: str, size: int, text_tokens: int, device: str, dtype: Any) -> dict[str, Any]:
    """The transformer's keyword arguments for one instruct step at ``size`` px (photo tokens appended)."""
    import torch

    from spl_backbones.flux import image_ids
    from spl_backbones.flux2 import IMAGE_T, position_ids

    g = torch.Generator("cpu").manual_seed(1)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device, dtype)

    if model == "flux-kontext-dev":
        n = (size // 16) ** 2
        ids = image_ids(size // 8, size // 8, device, dtype)
        photo = ids.clone()
        photo[:, 0] = 1
        return {"hidden_states": rand(1, 2 * n, 64), "encoder_hidden_states": rand(1, text_tokens, 4096),
                "pooled_projections": rand(1, 768), "timestep": torch.full((1,), 0.5, device=device, dtype=dtype),
                "guidance": torch.full((1,), 3.5, device=device), "txt_ids": torch.zeros(text_tokens, 3, device=device,
                                                                                          dtype=dtype),
                "img_ids": torch.cat([ids, photo]), "return_dict": False}
    if model == "qwen-image-edit":
        side = size // 16
        batch = 2  # true CFG: the instruction's row and the negative prompt's
        return {"hidden_states": rand(batch, 2 * side * side, 64),
                "encoder_hidden_states": rand(batch, text_tokens, 3584),
                "timestep": torch.full((batch,), 0.5, device=device, dtype=dtype),
                "img_shapes": [[(1, side, side), (1, side, side)]] * batch, "return_dict": False}
    side = size // 16
    text_ids = torch.zeros(1, text_tokens, 4, dtype=torch.long, device=device)
    text_ids[..., 3] = torch.arange(text_tokens, device=device)
    ids = torch.cat([position_ids(1, 0, side, side, device), position_ids(1, IMAGE_T, side, side, device)], dim=1)
    return {"hidden_states": rand(1, 2 * side * side, 128), "encoder_hidden_states": rand(1, text_tokens, 7680),
            "timestep": torch.full((1,), 0.5, device=device, dtype=dtype), "guidance": None,
            "txt_ids": text_ids, "img_ids": ids, "return_dict": False}


def step(args: argparse.Namespace) -> dict[str, Any]:
    """Seconds of one transformer call of an instruct step (second call, after a warm-up), peak memory."""
    import torch

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    began = time.perf_counter()
    module = random_transformer(args.model, args.device, dtype)
    built = time.perf_counter() - began
    kwargs = call_inputs(args.model, args.size, args.text_tokens or TEXT_TOKENS[args.model], args.device, dtype)
    timings = []
    with torch.no_grad():
        for _ in range(args.repeats + 1):
            if args.device == "cuda":
                torch.cuda.synchronize()
            began = time.perf_counter()
            module(**kwargs)
            if args.device == "cuda":
                torch.cuda.synchronize()
            timings.append(time.perf_counter() - began)
    row = {"model": args.model, "size": args.size, "text_tokens": args.text_tokens or TEXT_TOKENS[args.model],
           "device": args.device, "dtype": args.dtype, "threads": args.threads, "build_s": round(built, 1),
           "first_call_s": round(timings[0], 2), "step_s": round(min(timings[1:] or timings), 2)}
    if args.device == "cuda":
        row["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        row["gpu"] = torch.cuda.get_device_name()
    row["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return row


def gpu(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every model's step at 1024 px in bfloat16 on CUDA, each in its own process (its own peak)."""
    rows = []
    for model in MODELS:
        argv = [sys.executable, __file__, "step", "--model", model, "--size", "1024", "--device", "cuda",
                "--dtype", "bfloat16", "--json"]
        proc = subprocess.run(argv, capture_output=True, text=True)
        rows.append(json.loads(proc.stdout) if proc.returncode == 0 else
                    {"model": model, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("count", "step", "gpu"))
    parser.add_argument("--model", choices=MODELS, default="flux2-klein")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (square)")
    parser.add_argument("--text-tokens", type=int, default=0, help="text tokens (0: what the pipeline uses)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="timed calls after the first (0: the first only)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result: Any = count() if args.what == "count" else step(args) if args.what == "step" else gpu(args)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
