"""``--profile paper`` follows the paper code's float32 arithmetic order where it is cheap.

Each test writes out the paper code's order itself (from docs/paper-profile.md) and checks
the component's paper-order path against it bit for bit, and against the default path
up to float32 rounding: the two orders compute the same quantity.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from test_attention import SOURCE, TARGET, _tokenizer, attention_module, make, qkv

from spl_attention.processors import CrossAttentionProcessor, SelfAttentionProcessor
from spl_losses.spl import SPLLoss
from spl_methods.infedit import source_step, virtual_inversion_step
from spl_sdk.config import EditConfig
from spl_sdk.editor import Editor
from spl_sdk.options import with_resolved_options


def test_the_paper_profile_sets_each_arithmetic_option_and_explicit_values_win(plugins) -> None:
    paper = with_resolved_options(plugins, EditConfig(profile="paper", method="infedit", color_loss="cpl"))
    assert paper.options["infedit"] == {"coefficients": "float32"}
    assert paper.options["unified"]["scores"] == "bmm"
    assert paper.options["spl"]["residual"] == "expanded"
    assert paper.options["cpl"] == {"chroma": "kornia"}
    default = with_resolved_options(plugins, EditConfig(method="infedit"))
    assert default.options["infedit"] == {"coefficients": "float64"}
    assert default.options["unified"]["scores"] == "sdpa"
    assert default.options["spl"]["residual"] == "centered"
    mine = with_resolved_options(plugins, EditConfig(profile="paper", method="infedit",
                                                     options={"unified": {"scores": "sdpa"}}))
    assert mine.options["unified"]["scores"] == "sdpa"


# --------------------------------------------------------------------------- step coefficients
def paper_update(x_s, x_t, z0, e_s, e_t, a, a_prev, n, eta=1.0):
    """The virtual-inversion update with every coefficient a 0-dim float32 tensor, in the paper
    code's order: beta = 1 - A, scaled noise first, square roots by ``** 0.5``."""
    beta, beta_prev = 1 - a, 1 - a_prev
    std = eta * beta_prev
    noise = std ** 0.5 * n
    e_c = (x_s - a ** 0.5 * z0) / (1 - a) ** 0.5
    x0 = z0 + ((x_t - x_s) - beta ** 0.5 * (e_t - e_s)) / a ** 0.5
    direction = (beta_prev - std) ** 0.5 * ((e_t - e_s) + e_c)
    return a_prev ** 0.5 * x0 + direction + noise, a_prev ** 0.5 * z0 + direction + noise, x0


def test_float32_coefficients_follow_the_paper_code_bit_for_bit() -> None:
    g = torch.Generator().manual_seed(5)
    x_s, x_t, z0, e_s, e_t, n = (torch.randn(1, 4, 16, 16, generator=g) for _ in range(6))
    alphas = torch.linspace(0.9991, 0.0047, 1000, dtype=torch.float32)  # an SD-like float32 schedule
    # a step whose sqrt(1 - A) differs between float32 arithmetic and float64 rounded to float32
    # (about 2 in 5 of this schedule's entries do)
    t = next(i for i in range(1000)
             if float((1 - alphas[i]) ** 0.5) != float(torch.tensor(math.sqrt(1 - float(alphas[i])))))
    a, a_prev = alphas[t], alphas[max(t - 120, 0)]
    want_t, want_s, want_x0 = paper_update(x_s, x_t, z0, e_s, e_t, a, a_prev, n)
    got_t, got_x0 = virtual_inversion_step(x_s, x_t, z0, e_s, e_t, a, a_prev, n)
    assert torch.equal(got_t, want_t) and torch.equal(got_x0, want_x0)
    assert torch.equal(source_step(x_s, z0, a, a_prev, n), want_s)
    wide_t, wide_x0 = virtual_inversion_step(x_s, x_t, z0, e_s, e_t, float(a), float(a_prev), n)
    torch.testing.assert_close(wide_t, want_t)  # the same update up to float32 rounding
    assert not torch.equal(wide_x0, want_x0)  # ... which the paper order reproduces and float64 does not


# --------------------------------------------------------------------------- attention scores
def paper_attention(attn, q, k, v):
    """(batch, heads, n, d) attention as the paper's processor: baddbmm(scale) -> softmax -> bmm."""
    b, h, n, d = q.shape
    q3, k3, v3 = (t.reshape(b * h, -1, d) for t in (q, k, v))
    scores = torch.baddbmm(torch.empty(b * h, n, k3.shape[1]), q3, k3.transpose(-1, -2), beta=0, alpha=attn.scale)
    return torch.bmm(scores.softmax(-1), v3).view(b, h, n, d)


def test_self_attention_in_the_paper_order_is_bitwise_that_order() -> None:
    attn = attention_module(heads=2)
    ctl = make(backbone=SimpleNamespace(tokenizer=_tokenizer()), steps=5)
    ctl.begin_step(4)  # plain attention for source and target rows after the replacement phase
    x = torch.randn(6, 64, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        paper = SelfAttentionProcessor(ctl, "x.attn1.processor", scores="bmm")(attn, x)
        fused = SelfAttentionProcessor(ctl, "x.attn1.processor")(attn, x)
        q, k, v = qkv(attn, x)
        o = paper_attention(attn, q[:2], k[:2], v[:2])
        want = attn.to_out[0](o.transpose(1, 2).reshape(2, 64, -1))
    assert torch.equal(paper[:2], want)
    torch.testing.assert_close(paper, fused, rtol=1e-5, atol=1e-6)


def test_cross_attention_in_the_paper_order_edits_the_same_probabilities() -> None:
    attn = attention_module(heads=2, cross_dim=12)
    ctl = make(backbone=SimpleNamespace(tokenizer=_tokenizer()), steps=5)
    ctl.begin_step(0)
    x, ctx = torch.randn(6, 9, 16), torch.randn(6, 77, 12)
    with torch.no_grad():
        paper = CrossAttentionProcessor(ctl, "x.attn2.processor", scores="bmm")(attn, x, ctx)
        default = CrossAttentionProcessor(ctl, "x.attn2.processor")(attn, x, ctx)
        q, k, v = qkv(attn, x, ctx)
        o = paper_attention(attn, q[:3], k[:3], v[:3])  # the unconditional rows: plain, paper order
        want = attn.to_out[0](o.transpose(1, 2).reshape(3, 9, -1))
    assert torch.equal(paper[:3], want)
    torch.testing.assert_close(paper, default, rtol=1e-5, atol=1e-6)  # the edit is the same


# --------------------------------------------------------------------------- SPL residual
def test_spl_expanded_residual_is_the_documented_formula_term_by_term() -> None:
    from spl_sdk.filters import box_filter

    g = torch.Generator().manual_seed(4)
    s, e = torch.rand(2, 1, 3, 40, 56, generator=g)
    expanded = SPLLoss(weight=1.0, options={"residual": "expanded"})
    i, p = s.mean(1, keepdim=True), e.mean(1, keepdim=True)
    box = lambda x: box_filter(x, 5)  # noqa: E731
    m_i, m_p, m_ii, m_pp, m_ip = box(i), box(p), box(i * i), box(p * p), box(i * p)
    cov = m_ip - m_i * m_p
    a, a2 = cov / (m_ii - m_i * m_i + 1e-4), cov / (m_pp - m_p * m_p + 1e-4)
    b, b2 = m_p - a * m_i, m_i - a2 * m_p
    r1 = m_pp + a * a * m_ii + b * b - 2 * a * m_ip - 2 * b * m_p + 2 * a * b * m_i
    r2 = m_ii + a2 * a2 * m_pp + b2 * b2 - 2 * a2 * m_ip - 2 * b2 * m_i + 2 * a2 * b2 * m_p
    assert torch.equal(expanded.value(s, e), (r1 + r2).mean())
    centered = SPLLoss(weight=1.0)
    torch.testing.assert_close(expanded.value(s, e), centered.value(s, e), rtol=1e-4, atol=1e-7)
    grads = []
    for term in (expanded, centered):
        x = e.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(term.value(s, x), x)
        grads.append(grad)
    torch.testing.assert_close(*grads, rtol=1e-3, atol=1e-9)  # a, b held fixed: the same gradient


# --------------------------------------------------------------------------- VAE input layout
@pytest.mark.parametrize(("profile", "channels_last"), [("paper", True), ("default", False)])
def test_the_paper_profile_hands_the_vae_a_channels_last_image(tiny_backbone, plugins, monkeypatch,
                                                               profile, channels_last) -> None:
    layouts: list[bool] = []
    encode = tiny_backbone.encode_image

    def spy(image, generator=None):
        layouts.append(image.is_contiguous(memory_format=torch.channels_last) and not image.is_contiguous())
        return encode(image) if generator is None else encode(image, generator=generator)

    monkeypatch.setattr(tiny_backbone, "encode_image", spy)
    editor = Editor(tiny_backbone, EditConfig(backbone="tiny-random-sd15", working_size=64, steps=2,
                                              profile=profile, structure_loss=None), plugins)
    editor.edit(Image.new("RGB", (64, 64), (90, 140, 30)), SOURCE, TARGET)
    assert layouts[0] is channels_last  # the source encode; re-encodes take the optimizer's tensor


def test_spl_residual_accepts_the_old_spelling_centred() -> None:
    # 0.1 recorded options.spl.residual = "centred" in its result PNGs; they must still replay
    assert SPLLoss(weight=1.0, options={"residual": "centred"}).options.residual == "centered"
