"""Diffusers attention processors that let a controller edit a method's batch (docs/method.md section 4).

The flow around the attention itself (spatial/group norm, projections, output
projection, residual, rescale) follows diffusers' ``AttnProcessor2_0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from spl_sdk.components.layout import BatchLayout
from spl_sdk.lazy import functional as F
from spl_sdk.lazy import torch


class Controller(Protocol):
    """What the processors ask of the controller."""

    layout: BatchLayout | None

    def self_attention_indices(self, batch: int, device: torch.device) -> tuple[torch.Tensor, ...] | None:
        """Batch indices (query, key, value) each output element attends with, or None for plain attention."""

    def edits_cross(self, batch: int) -> bool:
        """True when the cross-attention of this batch is edited (a batch in the method's layout)."""

    def edit_cross(self, probs: torch.Tensor, *, store: bool) -> torch.Tensor:
        """Edited conditional probabilities (branches, k, heads, pixels, tokens); may store the maps."""


@dataclass
class Projected:
    """Queries, keys and values (batch, heads, length, head_dim) plus what is needed to finish the layer."""

    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    mask: torch.Tensor | None
    residual: torch.Tensor
    shape4d: tuple[int, int, int, int] | None


def project(attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None,
            attention_mask: torch.Tensor | None, temb: torch.Tensor | None) -> Projected:
    """Everything ``AttnProcessor2_0`` does before the attention call."""
    residual = hidden_states
    if attn.spatial_norm is not None:
        hidden_states = attn.spatial_norm(hidden_states, temb)
    shape4d = None
    if hidden_states.ndim == 4:
        shape4d = tuple(hidden_states.shape)
        b, c, h, w = shape4d
        hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
    batch, length, _ = hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
    if attention_mask is not None:
        attention_mask = attn.prepare_attention_mask(attention_mask, length, batch)
        attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
    query = attn.to_q(hidden_states)
    if encoder_hidden_states is None:
        encoder_hidden_states = hidden_states
    elif attn.norm_cross:
        encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
    key = attn.to_k(encoder_hidden_states)
    value = attn.to_v(encoder_hidden_states)
    head_dim = key.shape[-1] // attn.heads
    query, key, value = (t.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for t in (query, key, value))
    if getattr(attn, "norm_q", None) is not None:
        query = attn.norm_q(query)
    if getattr(attn, "norm_k", None) is not None:
        key = attn.norm_k(key)
    return Projected(query, key, value, attention_mask, residual, shape4d)


def finish(attn: Any, out: torch.Tensor, p: Projected) -> torch.Tensor:
    """Everything ``AttnProcessor2_0`` does after the attention call; ``out`` is (batch, heads, length, head_dim)."""
    batch, heads, _, head_dim = out.shape
    out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(p.query.dtype)
    out = attn.to_out[0](out)
    out = attn.to_out[1](out)
    if p.shape4d is not None:
        out = out.transpose(-1, -2).reshape(p.shape4d)
    if attn.residual_connection:
        out = out + p.residual
    return out / attn.rescale_output_factor


def sdpa(attn: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
         mask: torch.Tensor | None) -> torch.Tensor:
    """Fused attention: the (pixels x pixels) map is never materialized."""
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=0.0,
                                          is_causal=False, scale=attn.scale)


def _batched(t: torch.Tensor) -> torch.Tensor:
    """(batch, heads, length, dim) as diffusers' head_to_batch_dim lays it out: (batch * heads, length, dim)."""
    return t.reshape(-1, *t.shape[-2:])


def fused_probs(attn: Any, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """softmax(scale q k^T + mask) by diffusers' ``Attention.get_attention_scores`` (the scale fused into
    one baddbmm), as the paper's code computes every attention layer; (batch, heads, length, keys)."""
    b, h, n, _ = query.shape
    mask3 = None if mask is None else _batched(mask.expand(b, h, *mask.shape[-2:]))
    return attn.get_attention_scores(_batched(query), _batched(key), mask3).view(b, h, n, -1)


def bmm_attention(attn: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  mask: torch.Tensor | None) -> torch.Tensor:
    """Attention in the paper code's order: :func:`fused_probs`, then one batched matmul with the values."""
    probs = fused_probs(attn, query, key, mask)
    return probs_times_values(probs, value)


def probs_times_values(probs: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """(batch, heads, length, keys) probabilities times the values by one ``torch.bmm``, back as 4-D."""
    b, h, n, _ = probs.shape
    return torch.bmm(_batched(probs).to(value.dtype), _batched(value)).view(b, h, n, -1)


def attention_probs(attn: Any, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Explicit softmax(q k^T scale + mask), computed in float32 (only a few text columns)."""
    scores = torch.matmul(query.float(), key.float().transpose(-1, -2)) * attn.scale
    if mask is not None:
        scores = scores + mask.float()
    return scores.softmax(dim=-1)


class SelfAttentionProcessor:
    """Self-attention (``attn1``) with the query/key/value swaps of InfEdit's unified attention control.

    ``scores="bmm"`` computes attention as the paper's code does (:func:`bmm_attention`),
    "sdpa" with the fused kernel; the two agree up to float32 rounding.
    """

    def __init__(self, controller: Controller, layer: str, *, scores: str = "sdpa") -> None:
        self.controller = controller
        self.layer = layer
        self.attend = bmm_attention if scores == "bmm" else sdpa

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args: Any, **kwargs: Any) -> torch.Tensor:
        p = project(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        query, key, value, mask = p.query, p.key, p.value, p.mask
        indices = self.controller.self_attention_indices(query.shape[0], query.device)
        if indices is not None:
            qi, ki, vi = indices
            query, key, value = query[qi], key[ki], value[vi]
            if mask is not None and mask.shape[0] == query.shape[0]:
                mask = mask[ki]
        return finish(attn, self.attend(attn, query, key, value, mask), p)


class CrossAttentionProcessor:
    """Cross-attention (``attn2``): plain for unconditional rows, edited probabilities for conditional ones."""

    def __init__(self, controller: Controller, layer: str, *, store: bool = True, scores: str = "sdpa") -> None:
        self.controller = controller
        self.layer = layer
        self.store = store
        self.paper_order = scores == "bmm"  # every row through fused_probs and one bmm, as the paper's code

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args: Any, **kwargs: Any) -> torch.Tensor:
        p = project(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        batch = p.query.shape[0]
        if not self.controller.edits_cross(batch):
            attend = bmm_attention if self.paper_order else sdpa
            return finish(attn, attend(attn, p.query, p.key, p.value, p.mask), p)
        layout = self.controller.layout
        # guided layouts put every unconditional row first, then every conditional one
        half = batch // 2 if layout.guided else 0
        if self.paper_order:
            return finish(attn, self._paper_order(attn, p, half), p)
        mask_u = mask_c = None
        if p.mask is not None:
            mask_u, mask_c = (p.mask[:half], p.mask[half:]) if p.mask.shape[0] == batch else (p.mask, p.mask)
        parts = [sdpa(attn, p.query[:half], p.key[:half], p.value[:half], mask_u)] if half else []
        probs = attention_probs(attn, p.query[half:], p.key[half:], mask_c)
        rows, heads, pixels, tokens = probs.shape
        n = len(layout.branches)
        probs = self.controller.edit_cross(probs.view(n, rows // n, heads, pixels, tokens), store=self.store)
        value = p.value[half:]
        parts.append(torch.matmul(probs.reshape(rows, heads, pixels, tokens).to(value.dtype), value))
        return finish(attn, torch.cat(parts), p)

    def _paper_order(self, attn: Any, p: Projected, half: int) -> torch.Tensor:
        """The paper code's order: probabilities of every row (:func:`fused_probs`), the conditional
        rows edited, then one batched matmul with the values."""
        probs = fused_probs(attn, p.query, p.key, p.mask)
        cond = probs[half:]
        rows, heads, pixels, tokens = cond.shape
        n = len(self.controller.layout.branches)
        edited = self.controller.edit_cross(cond.float().view(n, rows // n, heads, pixels, tokens), store=self.store)
        probs = torch.cat([probs[:half], edited.reshape(rows, heads, pixels, tokens).to(probs.dtype)])
        return probs_times_values(probs, p.value)
