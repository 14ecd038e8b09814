"""Local blend (InfEdit/Prompt-to-Prompt): keep the source latent outside the blend words' attention."""

from __future__ import annotations

from spl_sdk.components import AttentionMaps
from spl_sdk.lazy import functional as F
from spl_sdk.lazy import torch


class LocalBlend:
    """Latent mask from the cross-attention maps of blend words: union of thresholded, max-normalized word maps."""

    def __init__(self, source_words: list[list[int]], target_words: list[list[int]], *,
                 threshold: float = 0.3, dilation: int = 1) -> None:
        self.source_words = source_words  # token positions of each source blend word
        self.target_words = target_words
        self.threshold = threshold
        self.dilation = dilation

    def _word_masks(self, maps: torch.Tensor, words: list[list[int]], size: tuple[int, int]) -> list[torch.Tensor]:
        masks = []
        for positions in words:
            m = maps[..., positions].sum(-1)[None, None]  # (1, 1, h, w)
            k = self.dilation
            if k > 0:  # small dilation, as Prompt-to-Prompt's local blend
                m = F.max_pool2d(m, 2 * k + 1, stride=1, padding=k)
            m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
            masks.append(m / m.max().clamp_min(1e-12) > self.threshold)
        return masks

    def mask(self, maps: AttentionMaps, size: tuple[int, int]) -> torch.Tensor:
        """(1, 1, h, w) float mask at latent size ``size``: 1 where the target may differ from the source."""
        masks = (self._word_masks(maps.source.float(), self.source_words, size)
                 + self._word_masks(maps.target.float(), self.target_words, size))
        union = torch.zeros(1, 1, *size, dtype=torch.bool, device=maps.source.device)
        for m in masks:
            union |= m
        return union.float()

    def __call__(self, maps: AttentionMaps, x_t: torch.Tensor, x_s: torch.Tensor) -> torch.Tensor:
        """``x_s + mask (x_t - x_s)``; ``lerp`` keeps both latents exact where the mask is 0 or 1."""
        mask = self.mask(maps, tuple(x_t.shape[-2:])).to(x_t.device, x_t.dtype)
        return torch.lerp(x_s, x_t, mask.expand_as(x_t))
