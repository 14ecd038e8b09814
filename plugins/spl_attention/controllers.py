"""InfEdit unified attention control and Prompt-to-Prompt replace/re-weight controllers (docs/method.md section 4)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from spl_attention.alignment import TokenAlignment, align_tokens, identity_alignment
from spl_attention.blend import LocalBlend
from spl_attention.processors import CrossAttentionProcessor, SelfAttentionProcessor
from spl_attention.store import AttentionStore, spatial_shape
from spl_sdk.components import AttentionController, AttentionMaps, Backbone
from spl_sdk.components.base import ComponentOptions
from spl_sdk.errors import PromptError
from spl_sdk.lazy import torch
from spl_sdk.prompts import context_length, prompt_ids, word_positions
from spl_sdk.words import comma_words, word_factors

# Which branch's queries / keys-and-values each branch uses after the self-attention phase one
# (mutual: target queries with source keys and values); a branch not named keeps its own.
QUERY_OF = {"mutual": "target"}
KV_OF = {"mutual": "source"}
EPS = 1e-9  # progress comparisons: (i + 1) / n against a fraction such as 0.8


class InfEditController(AttentionController):
    """InfEdit unified attention control with Prompt-to-Prompt refinement of cross-attention."""

    name = "unified"
    requires: ClassVar[frozenset[str]] = frozenset({"attention-processors", "unet-cross-attention"})

    class Options(ComponentOptions):
        """The attention schedule and local blend (docs/method.md sections 4 and 7)."""

        cross_replace: float = Field(0.8, ge=0, le=1, description=(
            "Fraction of steps with cross-attention replacement (--cross-replace)."))
        self_replace: float = Field(0.8, ge=0, le=1, description=(
            "Fraction of steps with self-attention replacement (--self-replace)."))
        blend_words_source: list[str] = Field(default_factory=list, description=(
            "Local blend words of the source prompt, comma-separated; off when both lists are empty."))
        blend_words_target: list[str] = Field(default_factory=list, description=(
            "Local blend words of the target prompt, comma-separated."))
        blend_threshold: float = Field(
            0.3, ge=0, le=1, description="Local blend: latent cells whose max-normalized blend-word "
                                         "attention exceeds this may change; the rest keep the source.")
        blend_dilation: int = Field(1, ge=0, le=8, description="Local blend: max-pool radius (in "
                                    "attention cells) that grows each word's map before thresholding.")
        scores: Literal["sdpa", "bmm"] = Field(
            "sdpa", description="How attention is computed: PyTorch's fused scaled_dot_product_attention "
                                "(sdpa), or the paper code's order (bmm): diffusers' get_attention_scores "
                                "(scale fused into the score matmul), softmax, then a batched matmul.")

        @field_validator("blend_words_source", "blend_words_target", mode="before")
        @classmethod
        def _comma_words(cls, value: Any) -> Any:
            return comma_words(value)

    profile_options: ClassVar[dict[str, dict[str, Any]]] = {"paper": {"scores": "bmm"}}

    def __init__(self, *, backbone: Backbone, source_prompt: str, target_prompt: str,
                 num_steps: int, profile: str = "default", options: ComponentOptions | None = None) -> None:
        super().__init__(backbone=backbone, source_prompt=source_prompt, target_prompt=target_prompt,
                         num_steps=num_steps, profile=profile, options=options)
        tokenizer = backbone.tokenizer
        self.length = context_length(tokenizer)
        self.source_ids = prompt_ids(tokenizer, source_prompt)
        self.target_ids = prompt_ids(tokenizer, target_prompt)
        self.alignment = self.build_alignment()
        self.store = AttentionStore()
        self.latent_shape: tuple[int, int] | None = None
        self.local_blend = self.build_blend()
        # maps the local blend reads: the backbone's mask resolution (16 for SD 1.x at 512 px,
        # as Prompt-to-Prompt's local blend; 32 for SDXL at 1024 px)
        self.blend_res = int(getattr(backbone, "attention_res", 16))

    # ------------------------------------------------------------------ set-up
    def build_alignment(self) -> TokenAlignment:
        """Target-to-source token mapping used by the cross-attention refinement.

        Ties go to a pair by default, to a gap under ``profile="paper"`` (Prompt-to-Prompt's
        aligner, which the paper's code uses; docs/method.md section 10).
        """
        ties = "gap" if self.profile == "paper" else "diagonal"
        return align_tokens(self.source_ids, self.target_ids, self.length, ties)

    def build_blend(self) -> LocalBlend | None:
        """Local blend over the configured words, or None when there are none."""
        tok = self.backbone.tokenizer
        source = [word_positions(tok, self.source_prompt, w, side="source")
                  for w in self.options.blend_words_source]
        target = [word_positions(tok, self.target_prompt, w, side="target")
                  for w in self.options.blend_words_target]
        if not (source or target):
            return None
        return LocalBlend(source, target, threshold=self.options.blend_threshold,
                          dilation=self.options.blend_dilation)

    # ------------------------------------------------------------------ schedule
    @property
    def progress(self) -> float:
        """``p = (i + 1) / n`` of the current step."""
        return (self.step + 1) / max(self.num_steps, 1)

    @property
    def self_replacing(self) -> bool:
        """Self-attention phase one (``p < self_replace``): every branch uses the source's queries and keys."""
        return self.progress < self.options.self_replace - EPS

    @property
    def cross_replacing(self) -> bool:
        """Cross-attention refinement window (``p <= cross_replace``)."""
        return self.progress <= self.options.cross_replace + EPS

    def _edits(self, batch: int) -> bool:
        """True when the batch has the method's layout with a source and a target branch."""
        layout = self.layout
        return (layout is not None and layout.fits(batch)
                and {"source", "target"} <= set(layout.branches))

    def self_attention_indices(self, batch: int, device: torch.device) -> tuple[torch.Tensor, ...] | None:
        """Batch indices (query, key, value) per output element, each guidance half handled separately."""
        if not self._edits(batch):
            return None
        layout = self.layout
        n = len(layout.branches)
        base = torch.arange(batch, device=device).view(layout.size // n, n, batch // layout.size)
        row = {b: base[:, layout.branch(b)] for b in layout.branches}
        if self.self_replacing:  # every branch reads the source's queries and keys
            qk = torch.stack([row["source"]] * n, 1).flatten()
            return qk, qk, base.flatten()
        q = torch.stack([row[QUERY_OF.get(b, b)] for b in layout.branches], 1).flatten()
        kv = torch.stack([row[KV_OF.get(b, b)] for b in layout.branches], 1).flatten()
        return q, kv, kv

    # ------------------------------------------------------------------ cross-attention
    def edits_cross(self, batch: int) -> bool:
        """Only a batch in the method's layout (with source and target branches) is edited."""
        return self._edits(batch)

    def edit_target(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Target probabilities (..., tokens) after editing; Prompt-to-Prompt refinement inside the window."""
        if self.cross_replacing and target.shape[-1] == self.length:
            return self.alignment.refine(source, target)
        return target

    def edit_cross(self, probs: torch.Tensor, *, store: bool) -> torch.Tensor:
        """Edit the conditional probabilities (branches, k, heads, pixels, tokens); store small layers' maps."""
        s, t = self.layout.branch("source"), self.layout.branch("target")
        original = probs[t]
        target = self.edit_target(probs[s], original)
        if target is not original:
            probs = torch.stack([target if i == t else probs[i] for i in range(probs.shape[0])])
        pixels = probs.shape[-2]
        if store and pixels <= self.store_limit():
            shape = spatial_shape(pixels, self.latent_shape)
            if shape is not None:
                self.store.add(shape, probs[s].mean((0, 1)), probs[t].mean((0, 1)))
        return probs

    def store_limit(self) -> int:
        """Most query pixels of a stored layer: 32 x 32, or more when a quarter of the latent is larger."""
        # docs/method.md section 4 stores layers of at most 32 x 32; at large working sizes
        # (SDXL at 2048 px attends at 128 and 64 only) the quarter-size level keeps masks possible.
        if self.latent_shape is None:
            return self.store.max_pixels
        h, w = self.latent_shape
        return max(self.store.max_pixels, -(-h // 4) * -(-w // 4))

    # ------------------------------------------------------------------ installation
    def processors(self, current: dict[str, Any]) -> dict[str, Any]:
        """Self-attention processors on ``attn1`` layers, cross-attention ones on ``attn2``; others kept."""
        new: dict[str, Any] = {}
        for name, proc in current.items():
            if name.endswith("attn1.processor"):
                new[name] = SelfAttentionProcessor(self, name, scores=self.options.scores)
            elif name.endswith("attn2.processor"):
                # maps of "down" and "up" layers only (docs/method.md section 5), never the middle block
                new[name] = CrossAttentionProcessor(self, name, store="mid_block" not in name,
                                                    scores=self.options.scores)
            else:
                new[name] = proc
        return new

    def set_latent_shape(self, height: int, width: int) -> None:
        """Latent (h, w), from which each layer's spatial size is inferred (non-square working sizes)."""
        self.latent_shape = (int(height), int(width))

    def _capture_latent_shape(self, module: Any, args: tuple, kwargs: dict) -> None:
        sample = args[0] if args else kwargs.get("sample")
        if isinstance(sample, torch.Tensor) and sample.ndim == 4:
            self.set_latent_shape(*sample.shape[-2:])

    @contextlib.contextmanager
    def installed(self) -> Iterator[AttentionController]:
        """Install the processors (restored in ``finally``) and watch the denoiser input for the latent shape."""
        hook = self.backbone.denoiser.register_forward_pre_hook(self._capture_latent_shape, with_kwargs=True)
        try:
            with super().installed():
                yield self
        finally:
            hook.remove()

    # ------------------------------------------------------------------ outputs
    def attention_maps(self, res: int = 16) -> AttentionMaps | None:
        """Source/target maps averaged over layers, heads and steps at long side ``res``."""
        return self.store.maps(res)

    def blend(self, x_t: torch.Tensor, x_s: torch.Tensor) -> torch.Tensor:
        """``x_s + mask (x_t - x_s)`` with the local-blend mask; identity without blend words."""
        if self.local_blend is None:
            return x_t
        maps = self.attention_maps(self.blend_res)
        return x_t if maps is None else self.local_blend(maps, x_t, x_s)


class P2PReplaceController(InfEditController):
    """Prompt-to-Prompt word swap: the target copies the source's cross-attention maps position by position."""

    name = "p2p-replace"

    def build_alignment(self) -> TokenAlignment:
        """Identity mapping; the prompts must have as many words and tokens."""
        s_words, t_words = len(self.source_prompt.split()), len(self.target_prompt.split())
        if s_words != t_words:
            raise PromptError(
                f"p2p-replace swaps words one for one, but the source prompt has {s_words} words and the "
                f"target prompt {t_words}; use prompts with the same number of words, or --attention unified.")
        s_tokens, t_tokens = len(self.source_ids), len(self.target_ids)
        if s_tokens != t_tokens:
            raise PromptError(
                f"p2p-replace needs prompts with the same number of tokens, but the source prompt has "
                f"{s_tokens} and the target prompt {t_tokens} (a swapped word splits into a different "
                f"number of tokens); choose words of equal token length, or use --attention unified.")
        return identity_alignment(self.length)


class P2PReweightController(InfEditController):
    """InfEdit control plus Prompt-to-Prompt re-weighting: scales the target's attention to chosen words at every step."""

    name = "p2p-reweight"

    class Options(InfEditController.Options):
        """InfEdit's options plus the words to re-weight."""

        reweight: dict[str, float] = Field(default_factory=dict, description=(
            "Target-prompt words and the factor to scale their attention by, e.g. 'red=2, car=0.5' "
            "(--reweight)."))

        @field_validator("reweight", mode="before")
        @classmethod
        def _word_factors(cls, value: Any) -> Any:
            return word_factors(value)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.equalizer = torch.ones(self.length)
        for word, factor in self.options.reweight.items():
            positions = word_positions(self.backbone.tokenizer, self.target_prompt, word, side="target")
            self.equalizer[positions] = float(factor)

    def edit_target(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Refined target probabilities with the chosen words' columns scaled, at every step."""
        target = super().edit_target(source, target)
        if target.shape[-1] != self.length:
            return target
        return target * self.equalizer.to(target.device, target.dtype)
