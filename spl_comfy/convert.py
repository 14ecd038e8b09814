"""ComfyUI's tensors <-> spl-sdk's: IMAGE is float (B, H, W, C) in [0, 1], MASK (B, H, W); ours (1, C, H, W)."""

from __future__ import annotations

from typing import Any

import torch


def pick(batch: torch.Tensor, index: int) -> torch.Tensor:
    """Item ``index`` of a batch, the single item of a batch of one reused for every index."""
    return batch[min(index, batch.shape[0] - 1)]


def pairs(node: str, source: torch.Tensor, edited: torch.Tensor) -> int:
    """How many results a node makes: the larger batch, when the other is of one or of the same size."""
    for name, image in (("source", source), ("edited", edited)):
        if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[-1] not in (1, 3, 4):
            raise ValueError(f"{node}: '{name}' must be a ComfyUI IMAGE, a (B, H, W, C) tensor; "
                             f"got {getattr(image, 'shape', type(image).__name__)}.")
    a, b = source.shape[0], edited.shape[0]
    if a != b and 1 not in (a, b):
        raise ValueError(f"{node}: the source batch has {a} images and the edited batch {b}; give batches "
                         f"of the same size, or one source for all edits.")
    return max(a, b)


def to_spl(image: torch.Tensor) -> torch.Tensor:
    """(H, W, C) in [0, 1] -> (1, 3, H, W) float32 in [-1, 1] (alpha dropped, gray repeated)."""
    image = image[..., :3] if image.shape[-1] >= 3 else image[..., :1].expand(*image.shape[:-1], 3)
    return image.permute(2, 0, 1)[None].float().mul(2).sub(1).clamp(-1, 1)


def to_comfy(image: Any) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1] or a PIL image -> (H, W, 3) float32 in [0, 1] on the CPU."""
    if not isinstance(image, torch.Tensor):
        from spl_sdk.imageio import pil_to_tensor

        image = pil_to_tensor(image)
    return image[0].detach().float().cpu().add(1).div(2).clamp(0, 1).permute(1, 2, 0).contiguous()
