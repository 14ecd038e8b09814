"""The cross-attention mask extractors (docs/method.md section 5): guided and bilinear upsampling."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from spl_masks.sharpen import sharpen
from spl_masks.upsample import GUIDED_EPS, bilinear_upsample, guided_upsample, resize
from spl_sdk.components import MaskContext, MaskExtractor
from spl_sdk.components.base import ComponentOptions
from spl_sdk.errors import ConfigError, PromptError
from spl_sdk.lazy import torch
from spl_sdk.prompts import words_positions
from spl_sdk.words import comma_words


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


class WordOptions(ComponentOptions):
    """Which prompt words define the mask, and how their maps become one (docs/method.md section 5)."""

    words_source: list[str] = Field(default_factory=list, description=(
        "Source-prompt words that define the mask, comma-separated (--mask-words-source)."))
    words_target: list[str] = Field(default_factory=list, description=(
        "Target-prompt words that define the mask, comma-separated (--mask-words-target)."))
    threshold_source: float = Field(0.5, ge=0, le=1, description="Threshold of the source word maps.")
    threshold_target: float = Field(0.5, ge=0, le=1, description="Threshold of the target word maps.")
    invert_source: bool = Field(False, description="Invert the source mask.")
    invert_target: bool = Field(False, description="Invert the target mask.")

    @field_validator("words_source", "words_target", mode="before")
    @classmethod
    def _comma_words(cls, value: Any) -> Any:
        return comma_words(value)


class CrossAttentionMask(MaskExtractor):
    """Mask from the mask words' cross-attention, upsampled along the photo's edges (guided filter)."""

    name = "cross-attention"
    needs_first_pass = True
    # reads the UNet cross-attention maps that the Prompt-to-Prompt controllers store
    requires: ClassVar[frozenset[str]] = frozenset({"unet-cross-attention"})

    class Options(WordOptions):
        """The mask words, and the guided upsampling of their mask (docs/method.md section 5)."""

        eps: float = Field(
            GUIDED_EPS, gt=0, le=1,
            description="Guided-filter regularizer on the [0, 1] gray guide; 1e-2 is the method's "
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
        cfg = self.options
        if not any(w.strip() for w in [*cfg.words_source, *cfg.words_target]):
            raise PromptError(f"the '{self.name}' mask extractor needs mask words: set "
                              "--mask-words-source/--mask-words-target (options "
                              f"{self.name}.words_source/words_target), or give a mask file with --mask.")
        if context.tokenizer is None:
            raise ValueError("MaskContext.tokenizer is required to look up mask words")
        words_positions(context.tokenizer, context.source_prompt, cfg.words_source, side="source")
        words_positions(context.tokenizer, context.target_prompt, cfg.words_target, side="target")

    def extract(self, context: MaskContext) -> torch.Tensor:
        """Element-wise maximum of the source-word and target-word masks at the source's size."""
        self.check(context)
        cfg = self.options
        source = context.source_image
        guide_t = context.first_result if context.first_result is not None else source
        guide_t = resize(guide_t.float(), tuple(source.shape[-2:]))
        sides = [
            ("source", cfg.words_source, context.source_prompt, source,
             cfg.threshold_source, cfg.invert_source),
            ("target", cfg.words_target, context.target_prompt, guide_t,
             cfg.threshold_target, cfg.invert_target),
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
    Options = WordOptions  # the mask words; no guided filter, so none of its settings
    def upsample(self, mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Low-resolution mask to the image's size in one bilinear step."""
        return bilinear_upsample(mask, image)
