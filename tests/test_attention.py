"""Attention controllers: processors, schedules, captured maps, store, local blend (docs/method.md section 4)."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

import spl_attention.processors as processors_module
from spl_attention import InfEditController, P2PReplaceController, P2PReweightController
from spl_attention.processors import CrossAttentionProcessor, SelfAttentionProcessor
from spl_attention.store import spatial_shape
from spl_methods.infedit import LAYOUT
from spl_sdk import get_plugins
from spl_sdk.components import AttentionMaps
from spl_sdk.errors import PromptError

SOURCE, TARGET = "a cat on a mat", "a black cat on a red mat"


@pytest.fixture(scope="module")
def backbone():
    """A fake backbone: a tiny SD-1.5-layout UNet (32/32/64/64, cross dim 32) and the real tokenizer."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=(32, 32, 64, 64), cross_attention_dim=32, attention_head_dim=4).eval()
    return SimpleNamespace(unet=unet, denoiser=unet, tokenizer=_tokenizer())


def make(cls=InfEditController, backbone=None, source=SOURCE, target=TARGET, steps=5, **options):
    """A controller with the infedit method's batch layout, as the method would set it."""
    controller = cls(backbone=backbone, source_prompt=source, target_prompt=target, num_steps=steps,
                     options=options)
    controller.layout = LAYOUT
    return controller


def run_unet(controller, h=16, w=16, steps=None, seed=0):
    """Run the UNet on a random 6-branch batch for each step, inside ``installed()``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 4, h, w, generator=g)
    emb = torch.randn(6, 77, 32, generator=g)
    unet = controller.backbone.unet
    with torch.no_grad(), controller.installed():
        for i in range(controller.num_steps if steps is None else steps):
            controller.begin_step(i)
            unet(x, 10, encoder_hidden_states=emb)


def test_registered_through_entry_points() -> None:
    plugins = get_plugins()
    assert plugins.attention_controller("unified") is InfEditController
    assert plugins.attention_controller("p2p-replace") is P2PReplaceController
    assert plugins.attention_controller("p2p-reweight") is P2PReweightController


# --------------------------------------------------------------------------- installation
def test_processors_by_layer_kind_and_restored_on_exception(backbone) -> None:
    unet = backbone.unet
    before = dict(unet.attn_processors)
    ctl = make(backbone=backbone)
    with pytest.raises(RuntimeError, match="boom"), ctl.installed():
        procs = unet.attn_processors
        for name, proc in procs.items():
            kind = SelfAttentionProcessor if name.endswith("attn1.processor") else CrossAttentionProcessor
            assert isinstance(proc, kind)
        raise RuntimeError("boom")
    after = unet.attn_processors
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] for k in before)
    assert len(unet._forward_pre_hooks) == 0  # latent-shape hook removed too


# --------------------------------------------------------------------------- schedule on captured maps
def test_cross_attention_replacement_schedule_on_captured_maps(backbone) -> None:
    ctl = make(backbone=backbone, steps=5)  # cross_replace 0.8: p = .2 .4 .6 .8 replaced, 1.0 not
    captured = []
    original = ctl.edit_cross

    def capture(probs, *, store):
        out = original(probs, store=store)
        captured.append((ctl.step, probs.clone(), out.clone()))
        return out

    ctl.edit_cross = capture
    run_unet(ctl)
    al = ctl.alignment
    aligned = al.alpha == 1
    new = torch.tensor([2, 6])  # "black", "red"
    assert torch.equal((~aligned).nonzero().flatten(), new)
    steps_seen = sorted({s for s, _, _ in captured})
    assert steps_seen == [0, 1, 2, 3, 4]
    for step, before, after in captured:
        s_in, t_in, t_out = before[0], before[1], after[1]
        assert torch.equal(after[0], s_in) and torch.equal(after[2], before[2])  # source, mutual untouched
        if step <= 3:
            # aligned target tokens copy the source's maps, new tokens keep their own
            assert torch.allclose(t_out[..., aligned], s_in[..., al.mapping[aligned]])
            assert torch.equal(t_out[..., new], t_in[..., new])
            assert not torch.allclose(t_out[..., 3], t_in[..., 3])  # "cat" really changed
        else:
            assert torch.equal(t_out, t_in)


def test_attention_store_keyed_by_spatial_size(backbone) -> None:
    ctl = make(backbone=backbone, steps=2)
    run_unet(ctl, 16, 16)
    # levels 16x16, 8x8, 4x4 carry cross-attention; 1 down + 2 up layers each, 2 steps; mid block (2x2) excluded
    assert set(ctl.store.sums) == {(16, 16), (8, 8), (4, 4)}
    assert all(count == 2 * 3 for count in ctl.store.counts.values())
    maps = ctl.attention_maps(16)
    assert isinstance(maps, AttentionMaps) and maps.res == 16
    assert maps.source.shape == (16, 16, 77) and maps.target.shape == (16, 16, 77)
    # averages of probabilities: every pixel's row sums to one
    assert torch.allclose(maps.source.sum(-1), torch.ones(16, 16), atol=1e-4)
    assert torch.allclose(maps.source, (ctl.store.sums[(16, 16)][0] / 6).view(16, 16, 77))
    assert ctl.attention_maps(8).source.shape == (8, 8, 77)
    assert ctl.attention_maps(32).source.shape == (32, 32, 77)  # resized from the nearest level


def test_store_skips_large_layers_and_handles_non_square_latents(backbone) -> None:
    ctl = make(backbone=backbone, steps=1)
    run_unet(ctl, 48, 32)  # levels 48x32 (1536 px, too large), 24x16, 12x8 stored
    assert ctl.latent_shape == (48, 32)  # seen by the UNet forward hook
    assert set(ctl.store.sums) == {(24, 16), (12, 8)}
    maps = ctl.attention_maps(24)
    assert maps.source.shape == (24, 16, 77)
    assert ctl.attention_maps(12).target.shape == (12, 8, 77)
    # the map keeps the spatial layout: the stored sum viewed row-major is the (h, w) map
    assert torch.allclose(maps.source, ctl.store.sums[(24, 16)][0].view(24, 16, 77) / ctl.store.counts[(24, 16)])


def test_spatial_shape_inference() -> None:
    assert spatial_shape(24 * 16, (48, 32)) == (24, 16)
    assert spatial_shape(13 * 9, (25, 17)) == (13, 9)  # odd sizes round up like stride-2 convs
    assert spatial_shape(64, None) == (8, 8)
    assert spatial_shape(24 * 16, None) is None  # unknown aspect, not a square: not stored
    assert spatial_shape(1024, (64, 16)) == (64, 16)


# --------------------------------------------------------------------------- processors vs direct computation
def attention_module(heads=2, dim=16, cross_dim=None, **kw) -> Attention:
    torch.manual_seed(1)
    return Attention(query_dim=dim, heads=heads, dim_head=8, cross_attention_dim=cross_dim, **kw).eval()


def qkv(attn, x, ctx=None):
    ctx = x if ctx is None else ctx
    b = x.shape[0]

    def split(t):
        return t.view(b, -1, attn.heads, t.shape[-1] // attn.heads).transpose(1, 2)

    return split(attn.to_q(x)), split(attn.to_k(ctx)), split(attn.to_v(ctx))


def out_proj(attn, o):
    b, h, n, d = o.shape
    return attn.to_out[0](o.transpose(1, 2).reshape(b, n, h * d))


def manual(q, k, v, scale):
    return (q @ k.transpose(-1, -2) * scale).softmax(-1) @ v


@pytest.mark.parametrize("heads", [1, 2, 3])
def test_self_attention_replacement_phase_uses_source_queries_keys(heads) -> None:
    attn = attention_module(heads=heads)
    ctl = make(backbone=SimpleNamespace(tokenizer=_tokenizer()), steps=5)
    ctl.begin_step(0)  # p = 0.2 < 0.8
    x = torch.randn(6, 10, 16)
    with torch.no_grad():
        out = SelfAttentionProcessor(ctl, "x.attn1.processor")(attn, x)
        q, k, v = qkv(attn, x)
        for half in (0, 3):
            s = half
            for branch in range(3):
                e = half + branch
                expect = out_proj(attn, manual(q[s:s + 1], k[s:s + 1], v[e:e + 1], attn.scale))
                assert torch.allclose(out[e:e + 1], expect, atol=1e-5), (half, branch)


def test_self_attention_after_phase_mutual_uses_target_queries() -> None:
    attn = attention_module(heads=2)
    ctl = make(backbone=SimpleNamespace(tokenizer=_tokenizer()), steps=5)
    ctl.begin_step(3)  # p = 0.8: not < 0.8
    x = torch.randn(6, 10, 16)
    with torch.no_grad():
        out = SelfAttentionProcessor(ctl, "x.attn1.processor")(attn, x)
        plain = AttnProcessor2_0()(attn, x)
        q, k, v = qkv(attn, x)
        for half in (0, 3):
            s, t, m = half, half + 1, half + 2
            assert torch.allclose(out[s], plain[s], atol=1e-5) and torch.allclose(out[t], plain[t], atol=1e-5)
            expect = out_proj(attn, manual(q[t:t + 1], k[s:s + 1], v[s:s + 1], attn.scale))
            assert torch.allclose(out[m:m + 1], expect, atol=1e-5)


def test_self_attention_goes_through_sdpa(monkeypatch) -> None:
    calls = []
    real = F.scaled_dot_product_attention

    def counting(q, k, v, **kw):
        calls.append(q.shape)
        return real(q, k, v, **kw)

    monkeypatch.setattr(processors_module.F, "scaled_dot_product_attention", counting)
    monkeypatch.setattr(processors_module, "attention_probs",
                        lambda *a, **k: pytest.fail("self-attention materialized its map"))
    attn = attention_module(heads=2)
    ctl = make(backbone=SimpleNamespace(tokenizer=_tokenizer()), steps=5)
    for step in (0, 4):
        ctl.begin_step(step)
        SelfAttentionProcessor(ctl, "x.attn1.processor")(attn, torch.randn(6, 64, 16))
    assert calls == [(6, 2, 64, 8)] * 2


def test_cross_attention_output_uses_refined_probabilities() -> None:
    attn = attention_module(heads=2, cross_dim=12)
    ctl = make(backbone=SimpleNamespace(tokenizer=_tokenizer()), steps=5)
    ctl.begin_step(0)
    x, ctx = torch.randn(6, 9, 16), torch.randn(6, 77, 12)
    with torch.no_grad():
        out = CrossAttentionProcessor(ctl, "x.attn2.processor")(attn, x, ctx)
        plain = AttnProcessor2_0()(attn, x, ctx)
        q, k, v = qkv(attn, x, ctx)
        probs = (q @ k.transpose(-1, -2) * attn.scale).softmax(-1)
        refined = ctl.alignment.refine(probs[3], probs[4])
        expect_t = out_proj(attn, refined[None] @ v[4:5])
    assert torch.allclose(out[:4], plain[:4], atol=1e-5)  # uncond half and source untouched
    assert torch.allclose(out[5], plain[5], atol=1e-5)  # mutual untouched
    assert torch.allclose(out[4:5], expect_t, atol=1e-5)
    assert not torch.allclose(out[4], plain[4], atol=1e-3)
    assert set(ctl.store.sums) == {(3, 3)}  # no latent shape known: a square pixel count is a square


@pytest.mark.parametrize("batch", [2, 6])
def test_processors_match_diffusers_when_not_editing(batch) -> None:
    """Outside both windows (and for other batch sizes) the processors equal AttnProcessor2_0."""
    attn = attention_module(heads=3, dim=32, cross_dim=12, residual_connection=True,
                            rescale_output_factor=2.0, norm_num_groups=4, cross_attention_norm="layer_norm")
    ctl = make(backbone=SimpleNamespace(tokenizer=_tokenizer()), steps=5, cross_replace=0.0, self_replace=0.0)
    ctl.begin_step(4)
    x, ctx = torch.randn(batch, 10, 32), torch.randn(batch, 77, 12)
    mask = torch.zeros(batch, 1, 77)
    mask[..., 40:] = -1e4  # an attention mask hiding padding tokens
    with torch.no_grad():
        for m in (None, mask):
            got = CrossAttentionProcessor(ctl, "a.attn2.processor")(attn, x, ctx, attention_mask=m)
            assert torch.allclose(got, AttnProcessor2_0()(attn, x, ctx, attention_mask=m), atol=1e-5)
        if batch == 2:
            attn1 = attention_module(heads=3, dim=32, residual_connection=True, rescale_output_factor=2.0,
                                     norm_num_groups=4)
            got = SelfAttentionProcessor(ctl, "a.attn1.processor")(attn1, x)
            assert torch.allclose(got, AttnProcessor2_0()(attn1, x), atol=1e-5)


def test_self_attention_on_spatial_input() -> None:
    """4-D hidden states (VAE-style attention) are flattened and restored like diffusers does."""
    attn = attention_module(heads=1, dim=16, norm_num_groups=4, residual_connection=True)
    ctl = make(backbone=SimpleNamespace(tokenizer=_tokenizer()), steps=5)
    ctl.begin_step(4)
    x = torch.randn(6, 16, 4, 5)
    with torch.no_grad():
        got = SelfAttentionProcessor(ctl, "a.attn1.processor")(attn, x)
        plain = AttnProcessor2_0()(attn, x)
    assert got.shape == x.shape
    assert torch.allclose(got[:2], plain[:2], atol=1e-5) and torch.allclose(got[3:5], plain[3:5], atol=1e-5)


# --------------------------------------------------------------------------- P2P controllers
def test_replace_requires_equal_word_and_token_counts() -> None:
    bb = SimpleNamespace(tokenizer=_tokenizer())
    with pytest.raises(PromptError, match="same number of words"):
        make(P2PReplaceController, bb, "a cat", "a black cat")
    with pytest.raises(PromptError, match="same number of tokens"):
        make(P2PReplaceController, bb, "a cat", "a hippopotamus")
    ctl = make(P2PReplaceController, bb, "a cat on a mat", "a dog on a mat")
    a_s, a_t = torch.rand(2, 4, 77), torch.rand(2, 4, 77)
    ctl.begin_step(3)
    assert torch.equal(ctl.edit_target(a_s, a_t), a_s)  # identity mapping inside the window
    ctl.begin_step(4)
    assert torch.equal(ctl.edit_target(a_s, a_t), a_t)


def test_reweight_scales_chosen_columns() -> None:
    bb = SimpleNamespace(tokenizer=_tokenizer())
    ctl = make(P2PReweightController, bb, reweight={"red mat": 2.0, "black": 0.5})
    ref = make(InfEditController, bb)
    a_s, a_t = torch.rand(2, 4, 77), torch.rand(2, 4, 77)
    for step in (0, 4):
        ctl.begin_step(step)
        ref.begin_step(step)
        got, base = ctl.edit_target(a_s, a_t), ref.edit_target(a_s, a_t)
        factor = torch.ones(77)
        factor[[6, 7]] = 2.0
        factor[2] = 0.5
        assert torch.allclose(got, base * factor)
    with pytest.raises(PromptError, match="'dog' is not in the target prompt"):
        make(P2PReweightController, bb, reweight={"dog": 2.0})


# --------------------------------------------------------------------------- local blend
def test_blend_is_identity_without_words(backbone) -> None:
    ctl = make(backbone=backbone)
    x_t, x_s = torch.randn(1, 4, 16, 16), torch.randn(1, 4, 16, 16)
    assert ctl.blend(x_t, x_s) is x_t


def test_local_blend_mask_and_mix(backbone) -> None:
    ctl = make(backbone=backbone, steps=1, blend_words_source=["cat"], blend_words_target=["black", "cat"])
    assert ctl.local_blend.source_words == [[2]] and ctl.local_blend.target_words == [[2], [3]]
    run_unet(ctl, 16, 12)
    x_t, x_s = torch.randn(1, 4, 16, 12), torch.randn(1, 4, 16, 12)
    maps = ctl.attention_maps(16)
    mask = ctl.local_blend.mask(maps, (16, 12))
    assert mask.shape == (1, 1, 16, 12)
    assert set(mask.unique().tolist()) <= {0.0, 1.0} and mask.sum() > 0
    out = ctl.blend(x_t, x_s)
    assert torch.allclose(out, x_s + mask * (x_t - x_s), atol=1e-6)


def test_local_blend_from_planted_maps() -> None:
    """A word whose map peaks in one corner blends only there (after a 1-pixel dilation)."""
    from spl_attention.blend import LocalBlend

    src, tgt = torch.zeros(4, 4, 77), torch.zeros(4, 4, 77)
    tgt[0, 0, 5] = 1.0
    mask = LocalBlend([], [[5]]).mask(AttentionMaps(src, tgt, 4), (4, 4))
    expect = torch.zeros(4, 4)
    expect[:2, :2] = 1
    assert torch.equal(mask[0, 0], expect)


def test_unknown_blend_word_raises(backbone) -> None:
    with pytest.raises(PromptError, match=r"'dog' is not in the source prompt 'a cat on a mat'; use one of its words"):
        make(backbone=backbone, blend_words_source=["dog"])


@functools.lru_cache(maxsize=1)
def _tokenizer():
    from spl_backbones.tokenizer import build_clip_tokenizer

    return build_clip_tokenizer()


def test_with_tiny_random_backbone_non_square(tiny_backbone) -> None:
    """The real plug-in path: encode prompts, predict noise on a 256x192 working size, read 16-px maps."""
    bb = tiny_backbone
    before = dict(bb.unet.attn_processors)
    ctl = make(backbone=bb, steps=2, blend_words_target=["red"])
    cond = bb.encode_prompts(["", "", "", SOURCE, TARGET, SOURCE])
    x = torch.randn(6, 4, 32, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), ctl.installed():
        for i in range(2):
            ctl.begin_step(i)
            bb.predict(x, 500, cond)
    assert all(bb.unet.attn_processors[k] is before[k] for k in before)
    assert ctl.latent_shape == (32, 24)
    # two layers per down block and three per up block at each of the three attention levels
    assert ctl.store.counts == {(32, 24): 10, (16, 12): 10, (8, 6): 10}
    maps = ctl.attention_maps(16)
    assert maps.source.shape == (16, 12, 77) and maps.target.shape == (16, 12, 77)
    x_t, x_s = torch.randn(1, 4, 32, 24), torch.randn(1, 4, 32, 24)
    mixed = ctl.blend(x_t, x_s)
    inside = ctl.local_blend.mask(maps, (32, 24)).bool().expand_as(x_t)
    assert torch.equal(mixed[inside], x_t[inside]) and torch.equal(mixed[~inside], x_s[~inside])
