"""The three networks behind the neural metrics, pretrained (downloaded once) or tiny and random.

Pretrained: DINO ViT-B/8 (``facebook/dino-vitb8``, transformers), CLIP ViT-L-14 with
the OpenAI weights (open_clip), LPIPS with SqueezeNet (``lpips``, as PIE-Bench's
torchmetrics LPIPS ``net_type='squeeze'``). ``tiny-random`` builds networks of the same
classes with random weights and no download, for tests.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from spl_sdk.errors import ModelNotFoundError

DINO_ID = "facebook/dino-vitb8"
CLIP_NAME, CLIP_WEIGHTS = "ViT-L-14", "openai"


@dataclass
class Networks:
    """DINO (a transformers ViTModel), CLIP (an open_clip CLIP) with its transforms, and LPIPS."""

    dino: Any
    clip: Any
    clip_preprocess: Callable[[Any], Any]
    clip_tokenizer: Callable[[list[str]], Any]
    lpips: Any
    device: Any


def pick_device(device: str = "auto") -> Any:
    """torch.device for ``device``; auto is CUDA when present, else the CPU."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _quiet_lpips(**kwargs: Any) -> Any:
    import lpips

    with warnings.catch_warnings():  # lpips still passes torchvision's deprecated 'pretrained'
        warnings.simplefilter("ignore", UserWarning)
        return lpips.LPIPS(net="squeeze", verbose=False, **kwargs)


def load_networks(kind: str = "pretrained", device: str = "auto") -> Networks:
    """Load the metric networks; offline with weights missing, one sentence names them."""
    if kind == "tiny-random":
        return tiny_random(device)
    import open_clip

    dev = pick_device(device)
    missing: list[str] = []
    loaded: dict[str, Any] = {}
    logging.disable(logging.ERROR)  # the loaders log their own failures; ours is one sentence
    try:
        with _offline_unless_reachable():
            _load_pretrained(loaded, missing)
    finally:
        logging.disable(logging.NOTSET)
    if missing:
        raise ModelNotFoundError(
            f"the evaluation needs weights that are neither cached nor downloadable here: "
            f"{'; '.join(missing)}; run spl eval once with network access (they are cached for "
            f"later), or copy the Hugging Face and torch caches (HF_HOME, TORCH_HOME) from a machine "
            f"that has them; for a smoke test without them, pass --networks tiny-random (random "
            f"weights: the figures then mean nothing).")
    return Networks(dino=loaded["dino"].eval().to(dev), clip=loaded["clip"].eval().to(dev),
                    clip_preprocess=loaded["preprocess"],
                    clip_tokenizer=open_clip.get_tokenizer(CLIP_NAME),
                    lpips=loaded["lpips"].eval().to(dev), device=dev)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers a TCP connect within ``timeout`` s (False when offline mode is on)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=timeout).close()
    except (OSError, ValueError):
        return False
    return True


@contextlib.contextmanager
def _offline_unless_reachable() -> Iterator[None]:
    """Cached weights only when the Hub cannot be reached: a missing one fails at once, not after
    the Hub client's download retries (minutes without a network)."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = before or not hub_reachable()
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def _load_pretrained(loaded: dict[str, Any], missing: list[str]) -> None:
    """Fill ``loaded`` with the networks that load; name the others in ``missing``."""
    import open_clip
    from transformers import ViTModel

    try:
        loaded["dino"] = ViTModel.from_pretrained(DINO_ID, add_pooling_layer=False)
    except Exception:
        missing.append(f"DINO ViT-B/8 ('{DINO_ID}' on the Hugging Face Hub)")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(CLIP_NAME, pretrained=CLIP_WEIGHTS)
        loaded.update(clip=model, preprocess=preprocess)
    except Exception:
        missing.append(f"CLIP {CLIP_NAME} with the OpenAI weights (open_clip)")
    try:
        loaded["lpips"] = _quiet_lpips()
    except Exception:
        missing.append("LPIPS's SqueezeNet (torchvision ImageNet weights)")


def tiny_random(device: str = "cpu", seed: int = 0) -> Networks:
    """Small seeded networks of the real classes (no download): for tests and dry runs."""
    import open_clip
    import torch
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
    from open_clip.transform import image_transform
    from transformers import ViTConfig, ViTModel

    dev = pick_device(device)
    torch.manual_seed(seed)
    dino = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, image_size=224, patch_size=8),
                    add_pooling_layer=False)
    clip = CLIP(embed_dim=32,
                vision_cfg=CLIPVisionCfg(layers=1, width=32, head_width=16, patch_size=32, image_size=224),
                text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=1))
    preprocess = image_transform(224, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN,
                                 std=open_clip.OPENAI_DATASET_STD)
    return Networks(dino=dino.eval().to(dev), clip=clip.eval().to(dev), clip_preprocess=preprocess,
                    clip_tokenizer=open_clip.get_tokenizer(CLIP_NAME),
                    lpips=_quiet_lpips(pnet_rand=True).eval().to(dev), device=dev)
