"""The cross-attention mask extractors (docs/method.md section 5): guided and bilinear upsampling."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from spl_masks.sharpen import sharpen
from spl_masks.upsample import GUIDED_EPS, bilinear_upsample, guided_upsample, resize
from spl_sdk.components import MaskContext, MaskExtractor
from spl_sdk.components.base import ComponentOptions
from spl_sdk.errors import ConfigError, PromptError
from spl_sdk.lazy import torch
from spl_sdk.prompts import words_positions


def word_mask(maps: torch.Tensor, columns: list[list[int]], threshold: float) -> torch.Tensor:
    """Binary (1, 1, h, w) union of the thresholded word maps of (h, w, tokens) attention.

    Each word's map is the mean of its token columns divided by its maximum,
    so the threshold is relative to the word's own peak (docs/method.md section 5, step 2).
    """
    maps = maps.float()
    union = torch.zeros(maps.shape[:2], device=maps.device)
    for cols in columns:
        m = maps[..., cols].mean(-1)
        peak = m.max()
        m = m / peak if peak > 0 else torch.zeros_like(m)
        union = torch.maximum(union, (m >= threshold).float())
    return union[None, None]


class CrossAttentionMask(MaskExtractor):
    """Mask from the mask words' cross-attention, upsampled along the photo's edges (guided filter)."""

    name = "cross-attention"
    needs_first_pass = True
    # reads the UNet cross-attention maps that the Prompt-to-Prompt controllers store
    requires: ClassVar[frozenset[str]] = frozenset({"unet-cross-attention"})

    class Options(ComponentOptions):
        """Guided upsampling of the attention mask (docs/method.md section 5)."""

        eps: float = Field(
            GUIDED_EPS, gt=0, le=1,
            description="Guided-filter regulariser on the [0, 1] gray guide; 1e-2 is the method's "
                        "published value. The project's synthetic benchmark (docs/benchmarks/masks.md) "
                        "found 1e-3 better on four of five composite sets (boundary F always, IoU "
                        "mostly): edges of lower contrast then steer the mask. Real attention maps "
                        "may behave differently.")
        radius: int = Field(1, ge=1, le=16, description="Guided-filter radius at the first (coarsest) "
                            "upsampling level, in pixels of that level.")
        radius_step: int = Field(1, ge=0, le=16, description="Radius added at each further level "
                                 "(each level doubles the mask's size).")

    def upsample(self, mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Low-resolution mask to the image's size: progressive guided filtering."""
        o = self.options
        return guided_upsample(mask, image, eps=o.eps, radius=o.radius, radius_step=o.radius_step)

    def side_mask(self, low: torch.Tensor, image: torch.Tensor, invert: bool) -> torch.Tensor:
        """Upsample, invert if asked, then sharpen the soft tail (docs/method.md section 5, steps 3-4)."""
        m = self.upsample(low, image)
        if invert:
            m = 1 - m
        return sharpen(m, image)

    def check(self, context: MaskContext) -> None:
        """Mask words must be given and present in their prompts (checked before any diffusion)."""
        cfg = self.config
        if not any(w.strip() for w in [*cfg.mask_words_source, *cfg.mask_words_target]):
            raise PromptError(f"the '{self.name}' mask extractor needs mask words: set "
                              "--mask-words-source/--mask-words-target (mask_words_source/"
                              "mask_words_target), or give a mask file with --mask.")
        if context.tokenizer is None:
            raise ValueError("MaskContext.tokenizer is required to look up mask words")
        words_positions(context.tokenizer, context.source_prompt, cfg.mask_words_source, side="source")
        words_positions(context.tokenizer, context.target_prompt, cfg.mask_words_target, side="target")

    def extract(self, context: MaskContext) -> torch.Tensor:
        """Element-wise maximum of the source-word and target-word masks at the source's size."""
        self.check(context)
        cfg = self.config
        source = context.source_image
        guide_t = context.first_result if context.first_result is not None else source
        guide_t = resize(guide_t.float(), tuple(source.shape[-2:]))
        sides = [
            ("source", cfg.mask_words_source, context.source_prompt, source,
             cfg.mask_threshold_source, cfg.mask_invert_source),
            ("target", cfg.mask_words_target, context.target_prompt, guide_t,
             cfg.mask_threshold_target, cfg.mask_invert_target),
        ]
        sides = [s for s in sides if any(w.strip() for w in s[1])]
        if context.attention is None:
            raise ConfigError(f"the '{self.name}' mask extractor needs stored cross-attention maps, "
                              "and the attention controller stored none; use an attention controller "
                              "that stores them (e.g. infedit), or the 'file' mask extractor.")
        masks = []
        for side, words, prompt, image, threshold, invert in sides:
            columns = words_positions(context.tokenizer, prompt, words, side=side)
            maps = getattr(context.attention, side).to(image.device)
            masks.append(self.side_mask(word_mask(maps, columns, threshold), image, invert))
        return torch.stack(masks).amax(0)


class CrossAttentionBilinearMask(CrossAttentionMask):
    """Mask from the mask words' cross-attention, upsampled bilinearly (baseline, no guided filter)."""

    name = "cross-attention-bilinear"
    Options = ComponentOptions  # no guided filter, so none of its settings
    def upsample(self, mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Low-resolution mask to the image's size in one bilinear step."""
        return bilinear_upsample(mask, image)
