"""Structure distance (DINO key self-similarity) and CLIP score, as PIE-Bench defines them."""

from __future__ import annotations

from typing import Any

from spl_sdk.lazy import numpy as np

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _last_key_projection(dino: Any) -> Any:
    """The key projection of the ViT's last attention layer (transformers 4: .key, 5: .k_proj)."""
    names = [(n, m) for n, m in dino.named_modules() if n.endswith(("k_proj", "attention.key"))]
    if not names:
        raise TypeError(f"{type(dino).__name__} has no attention key projection to read")
    return names[-1][1]


def key_self_similarity(dino: Any, image: np.ndarray) -> Any:
    """Cosine self-similarity (T x T, class token included) of the last layer's keys.

    Splice's structure descriptor as PIE-Bench feeds it: float pixel values 0-255 (not
    0-1: PIE-Bench's code skips the division), resized so the short side is 224
    (long side at most 480), then ImageNet-normalized. The keys of all heads are
    concatenated per token, which is the key projection's output itself.
    """
    import torch
    import torch.nn.functional as F
    from torchvision.transforms import functional as TF

    device = next(dino.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(image.astype(np.float32))).permute(2, 0, 1)
    x = TF.resize(x, 224, max_size=480, antialias=False)  # torchvision's tensor default of 2023
    x = TF.normalize(x, IMAGENET_MEAN, IMAGENET_STD)[None].to(device)
    captured: list[Any] = []
    handle = _last_key_projection(dino).register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        with torch.no_grad():
            dino(pixel_values=x, interpolate_pos_encoding=True)
    finally:
        handle.remove()
    keys = captured[-1][0].float()  # (T, D)
    keys = F.normalize(keys, dim=-1, eps=1e-8)
    return keys @ keys.T


def structure_distance(dino: Any, source: np.ndarray, edited: np.ndarray) -> float:
    """Mean squared difference of the two images' DINO key self-similarity matrices."""
    import torch.nn.functional as F

    return float(F.mse_loss(key_self_similarity(dino, edited), key_self_similarity(dino, source)))


def clip_score(nets: Any, image: np.ndarray, text: str, mask: np.ndarray | None = None) -> float:
    """100 x max(cosine(image, text), 0), torchmetrics' CLIPScore formula.

    With a mask the image is multiplied by it first (black outside the edited region),
    as PIE-Bench scores the edited part.
    """
    import torch
    from PIL import Image

    if mask is not None:
        image = (image.astype(np.float32) * np.asarray(mask, dtype=np.float32)[..., None]).astype(np.uint8)
    pixels = nets.clip_preprocess(Image.fromarray(image))[None].to(nets.device)
    tokens = nets.clip_tokenizer([text]).to(nets.device)
    with torch.no_grad():
        img = nets.clip.encode_image(pixels).float()
        txt = nets.clip.encode_text(tokens).float()
    cos = torch.nn.functional.cosine_similarity(img, txt).item()
    return 100.0 * max(cos, 0.0)
