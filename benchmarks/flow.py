"""Flow backbones at full size with random weights: parameter counts, one denoiser step, whole edits.

    python benchmarks/flow.py count                                   # any machine: meta tensors, no memory
    python benchmarks/flow.py step --model tiny-sd3 --size 256        # the tiny check (CPU, seconds)
    python benchmarks/flow.py denoiser --size 512                     # SD3.5-medium's transformer alone, CPU
    python benchmarks/flow.py step --model sd35-medium --size 1024 --device cuda --dtype bfloat16
    python benchmarks/flow.py step --model flux-dev --size 1024 --device cuda --dtype bfloat16
    python benchmarks/flow.py edit --model sd35-medium --size 1024 --device cuda --dtype bfloat16
    python benchmarks/flow.py all --device cuda --dtype bfloat16      # every row of docs/flow.md

Weights are random (built on the meta device, then filled with N(0, 0.02) on the target
device), so nothing is downloaded and the compute and memory are the real models'. "step"
times one denoiser call with FlowEdit's batch (SD3: source and target with CFG = 4 rows;
FLUX: 2 rows) and reports torch's peak allocation; "edit" runs a whole flowedit edit with
SPL injection and full-resolution post-processing through the Editor. Each case runs in
its own process so peaks belong to it alone. FLUX.1 (12B) does not fit a 24 GiB CPU
machine in float32 (48 GB of weights) or bfloat16 (24 GB): run it on a GPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "apps" / "examples" / "old_man.png"
PROMPTS = ("a photo of an old man", "a watercolor painting of an old man")

# Published component configs (config.json of each subfolder on the Hub).
CLIP_L = {"vocab_size": 49408, "max_position_embeddings": 77, "hidden_size": 768, "intermediate_size": 3072,
          "num_hidden_layers": 12, "num_attention_heads": 12, "projection_dim": 768, "hidden_act": "quick_gelu",
          "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407}
CLIP_G = {**CLIP_L, "hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
          "num_attention_heads": 20, "projection_dim": 1280, "hidden_act": "gelu"}
T5_XXL = {"vocab_size": 32128, "d_model": 4096, "d_ff": 10240, "d_kv": 64, "num_layers": 24, "num_heads": 64,
          "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
          "feed_forward_proj": "gated-gelu", "is_encoder_decoder": False, "pad_token_id": 0, "eos_token_id": 1}
VAE_16 = {"in_channels": 3, "out_channels": 3, "latent_channels": 16, "sample_size": 1024,
          "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
          "block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "norm_num_groups": 32,
          "use_quant_conv": False, "use_post_quant_conv": False}
SD35_MEDIUM = {"sample_size": 128, "patch_size": 2, "in_channels": 16, "out_channels": 16, "num_layers": 24,
               "attention_head_dim": 64, "num_attention_heads": 24, "joint_attention_dim": 4096,
               "caption_projection_dim": 1536, "pooled_projection_dim": 2048, "pos_embed_max_size": 384,
               "qk_norm": "rms_norm", "dual_attention_layers": tuple(range(13))}
FLUX_1 = {"patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38,
          "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
          "pooled_projection_dim": 768, "axes_dims_rope": (16, 56, 56)}
FULL = ("sd35-medium", "flux-dev", "flux-schnell")


def build_parts(model: str, device: str, dtype: Any) -> tuple[type, dict[str, Any]]:
    """The backbone class and its parts with random weights (meta -> device, N(0, 0.02))."""
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxTransformer2DModel,
        SD3Transformer2DModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        T5Config,
        T5EncoderModel,
    )

    from spl_backbones.flux import FluxDev, FluxSchnell
    from spl_backbones.sd3 import SD3Backbone
    from spl_backbones.t5_tokenizer import build_t5_tokenizer
    from spl_backbones.tiny_flow import FLUX_SCHEDULER, SD3_SCHEDULER
    from spl_backbones.tokenizer import build_clip_tokenizer

    def real(build: Any) -> Any:
        with torch.device("meta"):
            module = build()
        if device == "meta":
            return module
        module = module.to_empty(device=device).to(dtype)
        gen = torch.Generator(device).manual_seed(0)
        with torch.no_grad():
            for p in module.parameters():
                p.normal_(0.0, 0.02, generator=gen)
            for b in module.buffers():  # rotary/position tables: recomputed values are not needed
                if b.is_floating_point():
                    b.zero_()
        return module.requires_grad_(False).eval()

    vae = {**VAE_16, **({"scaling_factor": 1.5305, "shift_factor": 0.0609} if model == "sd35-medium"
                        else {"scaling_factor": 0.3611, "shift_factor": 0.1159})}
    parts: dict[str, Any] = {"tokenizer": build_clip_tokenizer(), "vae": real(lambda: AutoencoderKL(**vae))}
    if model == "sd35-medium":
        parts.update(tokenizer_2=build_clip_tokenizer(), tokenizer_3=build_t5_tokenizer(256),
                     text_encoder=real(lambda: CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_L))),
                     text_encoder_2=real(lambda: CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_G))),
                     text_encoder_3=real(lambda: T5EncoderModel(T5Config(**T5_XXL))),
                     transformer=real(lambda: SD3Transformer2DModel(**SD35_MEDIUM)),
                     scheduler=FlowMatchEulerDiscreteScheduler(**SD3_SCHEDULER))
        return SD3Backbone, parts
    dev = model == "flux-dev"
    schedule = FLUX_SCHEDULER if dev else {"num_train_timesteps": 1000, "shift": 1.0}
    parts.update(tokenizer_2=build_t5_tokenizer(512 if dev else 256),
                 text_encoder=real(lambda: CLIPTextModel(CLIPTextConfig(**CLIP_L))),
                 text_encoder_2=real(lambda: T5EncoderModel(T5Config(**T5_XXL))),
                 transformer=real(lambda: FluxTransformer2DModel(**FLUX_1, guidance_embeds=dev)),
                 scheduler=FlowMatchEulerDiscreteScheduler(**schedule))
    return (FluxDev if dev else FluxSchnell), parts


def count() -> dict[str, Any]:
    """Parameters per part of each full-size model (meta tensors: no memory, any machine)."""
    rows: dict[str, Any] = {}
    for model in FULL:
        _, parts = build_parts(model, "meta", None)
        modules = {k: v for k, v in parts.items() if hasattr(v, "parameters")}
        sizes = {k: sum(p.numel() for p in v.parameters()) for k, v in modules.items()}
        # memory also holds float buffers (SD3's 384 x 384 position table: 0.23 B values)
        held = {k: sizes[k] + sum(b.numel() for b in v.buffers() if b.is_floating_point())
                for k, v in modules.items()}
        rows[model] = {"params": {k: round(v / 1e9, 3) for k, v in sizes.items()},
                       "total_billion": round(sum(sizes.values()) / 1e9, 2),
                       "bf16_weights_gib": round(sum(held.values()) * 2 / 2**30, 1),
                       "largest_part_bf16_gib": {k: round(v * 2 / 2**30, 1) for k, v in held.items()
                                                 if v == max(held.values())}}
    return rows


def load_backbone(model: str, device: str, dtype: str) -> Any:
    """A full-size random backbone on ``device``, or a tiny one by its registry name."""
    import torch

    from spl_backbones.flow_backbone import flow_dtype
    from spl_backbones.tiny_flow import TinyRandomFlux, TinyRandomSD3

    tiny = {"tiny-sd3": TinyRandomSD3, "tiny-flux": TinyRandomFlux}
    if model in tiny:
        return tiny[model].load(device=device, dtype=dtype)
    dev = torch.device(device)
    dt = flow_dtype(dtype, dev)
    cls, parts = build_parts(model, device, dt)
    return cls(**parts, device=dev, dtype=dt)


def step(args: argparse.Namespace) -> dict[str, Any]:
    """Time one denoiser call with FlowEdit's batch at ``--size`` and report peak memory."""
    import torch

    from spl_methods.flowedit import FlowEdit

    backbone = load_backbone(args.model, args.device, args.dtype)
    cuda = args.device.startswith("cuda")
    s = FlowEdit().settings(backbone)
    cfg = s.source_guidance > 1 or s.target_guidance > 1
    embedded = "embedded-guidance" in backbone.capabilities
    rows = 4 if cfg and not embedded else 2
    side = args.size // backbone.vae_scale_factor
    latents = torch.randn(rows, 16, side, side, device=backbone.device)
    cond = backbone.encode_prompts(["", "", *PROMPTS] if rows == 4 else list(PROMPTS))
    t = backbone.timesteps(s.steps, latent_shape=tuple(latents.shape))[s.steps - s.n_max]
    guidance = [s.source_guidance, s.target_guidance] if embedded else None
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.repeat + 1):  # the first call warms up
        began = time.perf_counter()
        backbone.predict(latents, t, cond, guidance=guidance)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - began)
    row = {"case": "step", "model": args.model, "size": args.size, "batch_rows": rows,
           "dtype": str(backbone.dtype).removeprefix("torch."), "step_s": round(min(times[1:]), 4),
           "edit_denoiser_s": round(min(times[1:]) * s.n_max * s.n_avg, 2),
           "flowedit": {"steps": s.steps, "n_max": s.n_max}}
    if cuda:
        row["peak_cuda_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        row["device_name"] = torch.cuda.get_device_name()
    return row


def denoiser(args: argparse.Namespace) -> dict[str, Any]:
    """Time one SD3.5-medium transformer call alone (FlowEdit's 4-row CFG batch) with random inputs.

    The whole backbone does not fit a 24 GiB CPU machine in float32 (T5-XXL alone is 19 GB),
    but the transformer (2.24 B parameters, 9 GB) does: this is the per-step compute on a CPU.
    """
    import resource

    import torch
    from diffusers import SD3Transformer2DModel

    with torch.device("meta"):
        model = SD3Transformer2DModel(**SD35_MEDIUM)
    model = model.to_empty(device="cpu").float().requires_grad_(False).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=gen)
    side = args.size // 8
    rows, text = 4, 77 + 256  # CLIP tokens + T5 tokens, as SD3's prompt encoding concatenates them
    inputs = {"hidden_states": torch.randn(rows, 16, side, side, generator=gen),
              "encoder_hidden_states": torch.randn(rows, text, 4096, generator=gen),
              "pooled_projections": torch.randn(rows, 2048, generator=gen),
              "timestep": torch.full((rows,), 500.0)}
    began = time.perf_counter()
    with torch.no_grad():
        model(**inputs)
    seconds = time.perf_counter() - began
    return {"case": "denoiser", "model": "sd35-medium", "size": args.size, "batch_rows": rows,
            "dtype": "float32", "device": "cpu", "threads": torch.get_num_threads(),
            "step_s": round(seconds, 2), "edit_denoiser_s": round(seconds * 33, 1),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def edit(args: argparse.Namespace) -> dict[str, Any]:
    """A whole flowedit edit (family defaults, SPL injection, post-processing) through the Editor."""
    import torch

    from spl_sdk.config import EditConfig
    from spl_sdk.editor import Editor
    from spl_sdk.plugins import get_plugins

    backbone = load_backbone(args.model, args.device, args.dtype)
    cuda = args.device.startswith("cuda")
    cfg = EditConfig(backbone=backbone.name, device=args.device, working_size=args.size,
                     iterations=args.iters)
    editor = Editor(backbone, cfg, get_plugins())
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    result = editor.edit(EXAMPLE, *PROMPTS)
    if cuda:
        torch.cuda.synchronize()
    row = {"case": "edit", "model": args.model, "size": args.size, "steps": result.config.steps,
           "edit_s": round(time.perf_counter() - began, 2),
           "phases": {k: round(v, 2) for k, v in result.timings.items()}}
    if cuda:
        row["peak_cuda_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return row


def child(argv: list[str]) -> dict[str, Any]:
    """Run one case in a fresh process and return its JSON row (or the error's last line)."""
    proc = subprocess.run([sys.executable, __file__, *argv, "--json"], capture_output=True, text=True)
    if proc.returncode:
        return {"case": argv[0], "model": argv[2], "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    """Parse the command line and run the case(s)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=("count", "step", "denoiser", "edit", "all"))
    parser.add_argument("--model", default="tiny-sd3", help="sd35-medium, flux-dev, flux-schnell, tiny-sd3, tiny-flux")
    parser.add_argument("--size", type=int, default=1024, help="working size (long side, pixels)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--iters", type=int, default=100, help="optimization iterations per injection")
    parser.add_argument("--json", action="store_true", help="print one JSON row (used by 'all')")
    args = parser.parse_args()
    if args.case == "count":
        print(json.dumps(count(), indent=2))
        return
    if args.case == "all":
        common = ["--device", args.device, "--dtype", args.dtype]
        rows = [child(["step", "--model", m, "--size", str(s), *common]) for m in FULL for s in (512, 1024)]
        rows += [child(["edit", "--model", m, "--size", "1024", *common]) for m in FULL]
        for row in rows:
            print(json.dumps(row))
        return
    row = {"step": step, "denoiser": denoiser, "edit": edit}[args.case](args)
    print(json.dumps(row) if args.json else json.dumps(row, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "plugins"))
    main()
