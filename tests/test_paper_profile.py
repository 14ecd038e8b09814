"""``--profile paper``: the paper's code's random stream, VAE sampling, token alignment and solver.

docs/method.md section 10 lists what the profile changes; these tests pin each item
against an independent description of the paper's code.
"""

from __future__ import annotations

import sys

import pytest
import torch
from PIL import Image

import spl_attention.processors as processors_module
from spl_attention import InfEditController
from spl_attention.alignment import align_tokens
from spl_sdk.config import EditConfig, build_config
from spl_sdk.editor import Editor
from spl_sdk.errors import ConfigError
from spl_sdk.imageio import pil_to_tensor
from spl_sdk.plan import fill
from spl_sdk.prompts import context_length, prompt_ids

SIZE = 64  # working size = image size: the editor feeds the photo to the VAE unresized
FAST = dict(backbone="tiny-random-sd15", working_size=SIZE, steps=4, iterations=2, seed=7)
SOURCE, TARGET = "a photo of an old man", "a photo of a smiling old man"


@pytest.fixture
def photo(example_image) -> Image.Image:
    return example_image.resize((SIZE, SIZE))


@pytest.fixture(scope="module")
def tokenizer():
    from spl_backbones.tokenizer import build_clip_tokenizer

    return build_clip_tokenizer()


# --------------------------------------------------------------------------- token alignment ties
def p2p_mapper(x: list[int], y: list[int]) -> list[int]:
    """Prompt-to-Prompt's aligner as described in docs/method.md section 10, written out literally.

    Fill: score = max(left, up, diagonal) (gap 0, match 1, mismatch -1); the cell's pointer is
    'left' when the score equals left, else 'up' when it equals up, else 'diagonal'. Walk the
    pointers back from the corner; each 'left' gives its target token -1, each 'diagonal' its
    source token. Returns the source index of every target token (-1: none).
    """
    n, m = len(x), len(y)
    score = [[0] * (m + 1) for _ in range(n + 1)]
    ptr = [["left"] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        ptr[i][0] = "up"
        for j in range(1, m + 1):
            left, up = score[i][j - 1], score[i - 1][j]
            diag = score[i - 1][j - 1] + (1 if x[i - 1] == y[j - 1] else -1)
            score[i][j] = max(left, up, diag)
            ptr[i][j] = "left" if score[i][j] == left else "up" if score[i][j] == up else "diagonal"
    out: list[int] = []
    i, j = n, m
    while i > 0 or j > 0:
        if ptr[i][j] == "diagonal":
            i, j = i - 1, j - 1
            out.append(i)
        elif ptr[i][j] == "left":
            j -= 1
            out.append(-1)
        else:
            i -= 1
    return out[::-1]


REPEAT = ("a photo of a cat", "a photo of a photo of a cat")


def test_repeated_tokens_align_as_prompt_to_prompt_under_the_paper_profile(tokenizer) -> None:
    src, tgt = (prompt_ids(tokenizer, p) for p in REPEAT)
    # target: <bos> a photo of a photo of a cat <eos>; source: <bos> a photo of a cat <eos>
    paper = align_tokens(src, tgt, 77, ties="gap")
    ours = align_tokens(src, tgt, 77)
    n = len(tgt)
    # the paper's aligner pairs the first "a photo of a" and leaves the repeat's "photo of a" new
    assert paper.alpha[:n].tolist() == [1, 1, 1, 1, 1, 0, 0, 0, 1, 1]
    assert paper.mapping[:n][paper.alpha[:n] == 1].tolist() == [0, 1, 2, 3, 4, 5, 6]
    # ours pairs the last "a photo of a" and leaves the first "a photo of" new
    assert ours.alpha[:n].tolist() == [1, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert ours.mapping[:n][ours.alpha[:n] == 1].tolist() == [0, 1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("pair", [
    REPEAT, ("a cat on a mat", "a black cat on a red mat"), ("a black cat", "a cat"),
    ("a cat", "a dog"), ("a dog and a dog", "a dog and a cat and a dog"),
    ("a red car", "a red red car"),
])
def test_gap_ties_equal_the_literal_prompt_to_prompt_rule(tokenizer, pair) -> None:
    src, tgt = (prompt_ids(tokenizer, p) for p in pair)
    expected = p2p_mapper(src, tgt)
    got = align_tokens(src, tgt, 77, ties="gap")
    n = len(tgt)
    assert got.alpha[:n].tolist() == [float(e >= 0) for e in expected]
    assert [int(got.mapping[j]) for j in range(n) if expected[j] >= 0] == [e for e in expected if e >= 0]
    assert torch.equal(got.mapping[n:], torch.arange(n, 77)) and bool((got.alpha[n:] == 1).all())


@pytest.mark.parametrize("profile, ties", [("default", "diagonal"), ("paper", "gap")])
def test_controller_alignment_follows_the_profile(tiny_backbone, profile, ties) -> None:
    controller = InfEditController(backbone=tiny_backbone, source_prompt=REPEAT[0], target_prompt=REPEAT[1],
                                   num_steps=4, profile=profile)
    tok = tiny_backbone.tokenizer
    expected = align_tokens(prompt_ids(tok, REPEAT[0]), prompt_ids(tok, REPEAT[1]), context_length(tok), ties)
    assert torch.equal(controller.alignment.alpha, expected.alpha)
    assert torch.equal(controller.alignment.mapping, expected.mapping)


# --------------------------------------------------------------------------- configuration
def test_profile_fills_its_defaults_and_refuses_a_conflicting_solver() -> None:
    # unset stays None in the config; the plan fills it from the profile (spl_sdk.plan.fill)
    paper = EditConfig(profile="paper")
    assert (paper.solver, paper.working_size) == (None, None)
    assert fill(paper, paper.profile_defaults()).model_dump(include={"solver", "working_size"}) == \
        {"solver": "reference", "working_size": 512}
    explicit = EditConfig(profile="paper", working_size=256)
    assert fill(explicit, explicit.profile_defaults()).working_size == 256  # explicit wins
    assert EditConfig(profile="paper", solver="reference").solver == "reference"
    default = EditConfig()
    assert (default.profile, default.solver, default.working_size) == ("default", None, None)
    assert fill(default, default.profile_defaults()).solver == "fast"
    with pytest.raises(ConfigError, match="profile 'paper' .* needs solver 'reference', not 'fast'"):
        build_config(EditConfig, profile="paper", solver="fast")


def test_per_edit_profile_brings_its_defaults_and_is_recorded(tiny_backbone, plugins, photo) -> None:
    editor = Editor(tiny_backbone, EditConfig(**FAST, post_process=False), plugins)
    cfg = editor.plan(photo, SOURCE, TARGET, profile="paper").config
    assert (cfg.profile, cfg.solver) == ("paper", "reference")
    assert editor.plan(photo, SOURCE, TARGET).config.solver == "fast"
    result = editor.edit(photo, SOURCE, TARGET, profile="paper", structure_loss=None)
    assert result.metadata()["config"]["profile"] == "paper"
    assert result.metadata()["config"]["solver"] == "reference"


def test_paper_profile_refuses_another_method(tiny_backbone, plugins, photo) -> None:
    editor = Editor(tiny_backbone, EditConfig(**FAST, profile="paper", method="flowedit"), plugins)
    with pytest.raises(ConfigError, match="use --method infedit"):
        editor.edit(photo, SOURCE, TARGET)


# --------------------------------------------------------------------------- the random stream
class Recorder:
    """Wraps torch.randn and the backbone's denoiser call; logs (event, shape) in call order."""

    def __init__(self, monkeypatch, backbone) -> None:
        self.events: list[tuple[str, tuple[int, ...]]] = []
        self.values: list[torch.Tensor] = []
        self.generators: list[torch.Generator | None] = []
        self.unet_inputs: list[torch.Tensor] = []
        randn, predict = torch.randn, backbone.predict

        def recording_randn(*args, **kwargs):
            out = randn(*args, **kwargs)
            frame, names = sys._getframe(1), set()
            for _ in range(12):  # the callers' names (inspect.stack() reads source files: slow)
                if frame is None:
                    break
                names.add(frame.f_code.co_name)
                frame = frame.f_back
            self.events.append(("posterior" if "encode_image" in names else "noise", tuple(out.shape)))
            self.values.append(out.clone())
            self.generators.append(kwargs.get("generator"))
            return out

        def recording_predict(latents, t, cond, **kw):
            self.events.append(("unet", tuple(latents.shape)))
            self.unet_inputs.append(latents.clone())
            return predict(latents, t, cond, **kw)

        monkeypatch.setattr(torch, "randn", recording_randn)
        monkeypatch.setattr(backbone, "predict", recording_predict)


LATENT = (1, 4, SIZE // 8, SIZE // 8)


def test_paper_profile_draws_in_the_papers_order_from_one_seeded_generator(
        tiny_backbone, plugins, photo, monkeypatch) -> None:
    """4 steps, injection at steps 2 and 3 (opt_start 0.5): the order written down in docs/method.md section 10."""
    editor = Editor(tiny_backbone, EditConfig(**FAST, profile="paper", opt_start=0.5), plugins)
    rec = Recorder(monkeypatch, tiny_backbone)
    global_state = torch.random.get_rng_state()
    editor.edit(photo, SOURCE, TARGET)
    monkeypatch.undo()  # torch.randn back to itself before drawing the expected values
    post, noise, unet = ("posterior", LATENT), ("noise", LATENT), ("unet", (6, *LATENT[1:]))
    assert rec.events == [
        post,            # source latent: a sample of the VAE posterior
        noise,           # initial noise shared by the three branches
        unet, noise,     # step 0: denoiser call, then the step's noise
        unet, noise,     # step 1
        unet, noise, post,  # step 2: noise, then the injected image's re-encode samples
        unet, noise, post,  # step 3
    ]
    gen = rec.generators[0]
    assert isinstance(gen, torch.Generator) and all(g is gen for g in rec.generators)
    assert torch.equal(torch.random.get_rng_state(), global_state)  # the global generator is left alone

    # the same values from a separately seeded generator, drawn in the documented order
    fresh = torch.Generator().manual_seed(FAST["seed"])
    expected = [torch.randn(LATENT, generator=fresh) for _ in rec.values]
    for got, want in zip(rec.values, expected, strict=True):
        assert torch.equal(got, want)
    # ... and they are used as documented: the posterior sample makes z0, the next draw starts the branches
    vae = tiny_backbone.vae
    posterior = vae.encode(pil_to_tensor(photo)).latent_dist
    z0 = (posterior.mean + posterior.std * expected[0]) * vae.config.scaling_factor
    assert torch.equal(rec.unet_inputs[0], expected[1].expand(6, *LATENT[1:]))
    assert not torch.allclose(z0, posterior.mean * vae.config.scaling_factor)


def test_one_generator_equals_the_global_stream_the_paper_uses() -> None:
    """The paper calls torch.manual_seed(seed) and draws from the global generator; a fresh one matches."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(11)
        global_draws = [torch.randn(LATENT) for _ in range(3)]
    finally:
        torch.random.set_rng_state(state)
    own = torch.Generator().manual_seed(11)
    assert all(torch.equal(a, torch.randn(LATENT, generator=own)) for a in global_draws)


def test_paper_mask_pass_restarts_the_stream(tiny_backbone, plugins, photo, monkeypatch) -> None:
    """With a masked loss the first pass (for the mask) and the edit each begin at the seed, as the paper reseeds."""
    editor = Editor(tiny_backbone, EditConfig(**FAST, profile="paper", opt_start=1.0,
                                              structure_area="masked", mask_words_source=["man"]), plugins)
    rec = Recorder(monkeypatch, tiny_backbone)
    editor.edit(photo, SOURCE, TARGET)
    draws = [event for event, _ in rec.events if event != "unet"]
    # the edit's source sample, then the mask pass's whole stream, then the edit's noise
    assert draws == ["posterior"] * 2 + ["noise"] * 5 * 2
    assert torch.equal(rec.values[0], rec.values[1])  # each stream begins with the same source sample
    assert torch.equal(rec.values[2], rec.values[7])  # ... and the same initial noise
    assert rec.generators[1] is not rec.generators[0] and rec.generators[-1] is rec.generators[0]


def test_default_profile_encodes_the_mean_and_seeds_a_private_generator(
        tiny_backbone, plugins, photo, monkeypatch) -> None:
    editor = Editor(tiny_backbone, EditConfig(**FAST, opt_start=0.5), plugins)
    rec = Recorder(monkeypatch, tiny_backbone)
    editor.edit(photo, SOURCE, TARGET)
    monkeypatch.undo()
    noise, unet = ("noise", LATENT), ("unet", (6, *LATENT[1:]))
    assert rec.events == [noise] + [unet, noise] * 4  # no posterior sample anywhere
    fresh = torch.Generator().manual_seed(FAST["seed"])
    assert all(torch.equal(v, torch.randn(LATENT, generator=fresh)) for v in rec.values)


# --------------------------------------------------------------------------- target guidance 1
@pytest.mark.parametrize("profile", ["default", "paper"])
def test_target_guidance_one_keeps_six_rows_and_edits_the_conditional_half(
        tiny_backbone, plugins, photo, monkeypatch, profile) -> None:
    """The paper's code drops to three rows at target guidance 1 and then edits the wrong half; we do not."""
    rec = Recorder(monkeypatch, tiny_backbone)
    cond_rows: list[torch.Tensor] = []
    encode = tiny_backbone.encode_prompts

    def recording_encode(prompts):
        cond = encode(prompts)
        cond_rows.append(cond.embeddings.clone())
        return cond

    keys: list[tuple[torch.Tensor, torch.Tensor]] = []
    probs_of = processors_module.attention_probs

    def recording_probs(attn, query, key, mask):
        keys.append((attn.to_k(cond_rows[-1][3:]), key))  # rows the controller edits vs conditional rows
        return probs_of(attn, query, key, mask)

    edits: list[tuple[torch.Tensor, torch.Tensor]] = []
    edit_cross = InfEditController.edit_cross

    def recording_edit(self, probs, *, store):
        out = edit_cross(self, probs, store=store)
        edits.append((probs.clone(), out.clone()))
        return out

    paper_order = processors_module.CrossAttentionProcessor._paper_order

    def recording_paper_order(self, attn, p, half):  # the paper's order: probabilities of all six rows
        keys.append((attn.to_k(cond_rows[-1]), p.key))
        return paper_order(self, attn, p, half)

    monkeypatch.setattr(tiny_backbone, "encode_prompts", recording_encode)
    monkeypatch.setattr(processors_module, "attention_probs", recording_probs)
    monkeypatch.setattr(processors_module.CrossAttentionProcessor, "_paper_order", recording_paper_order)
    monkeypatch.setattr(InfEditController, "edit_cross", recording_edit)
    editor = Editor(tiny_backbone, EditConfig(**FAST, profile=profile, target_guidance=1.0,
                                              structure_loss=None), plugins)
    editor.edit(photo, SOURCE, TARGET)
    assert [e for e in rec.events if e[0] == "unet"] == [("unet", (6, *LATENT[1:]))] * 4
    empty = encode([""]).embeddings[0]
    assert all(torch.equal(row, empty) for row in cond_rows[0][:3])  # rows 0-2: unconditional
    assert torch.equal(cond_rows[0][4], encode([TARGET]).embeddings[0])  # row 4: target, conditional
    assert keys
    for expected, got in keys:
        heads = got.shape[1]
        want = expected.view(len(expected), -1, heads, got.shape[-1]).transpose(1, 2)
        torch.testing.assert_close(got, want)
    # cross-attention replacement happened in the conditional target rows
    assert any(not torch.equal(before[1], after[1]) for before, after in edits)


# --------------------------------------------------------------------------- command line
def test_cli_profile_is_recorded_and_a_conflicting_solver_is_one_line(tmp_path, photo) -> None:
    from click.testing import CliRunner

    from spl_sdk.cli import main
    from spl_sdk.imageio import read_metadata

    path, out = tmp_path / "photo.png", tmp_path / "out.png"
    photo.save(path)
    args = ["edit", str(path), "-s", SOURCE, "-t", TARGET, "--backbone", "tiny-random-sd15",
            "--working-size", str(SIZE), "--steps", "2", "--iterations", "2", "--profile", "paper"]
    run = CliRunner().invoke(main, [*args, "-o", str(out)])
    assert run.exit_code == 0, run.output
    config = read_metadata(out)["config"]
    assert (config["profile"], config["solver"]) == ("paper", "reference")
    refused = CliRunner().invoke(main, [*args, "--solver", "fast", "-o", str(tmp_path / "b.png")])
    assert refused.exit_code == 1 and "needs solver 'reference', not 'fast'" in refused.output
    assert len(refused.output.strip().splitlines()) == 1


# --------------------------------------------------------------------------- color loss chroma
def kornia_chroma(rgb01: torch.Tensor) -> torch.Tensor:
    """Cb, Cr of kornia's rgb_to_ycbcr written out per pixel in float64 (no spl-sdk code):
    Y = 0.299 R + 0.587 G + 0.114 B, Cb = (B - Y) 0.564 + 0.5, Cr = (R - Y) 0.713 + 0.5."""
    r, g, b = rgb01.double().unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return torch.stack([(b - y) * 0.564 + 0.5, (r - y) * 0.713 + 0.5], 1)


@pytest.fixture
def image_pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    source = torch.rand(1, 3, 32, 48, generator=g) * 2 - 1
    edited = (source + 0.3 * torch.randn(1, 3, 32, 48, generator=g)).clamp(-1, 1)
    return source, edited


def _cpl_of(cfg: EditConfig, plugins):
    from spl_sdk.options import with_resolved_options
    from spl_sdk.terms import build_terms

    cfg = with_resolved_options(plugins, cfg)
    (term,) = [t for t in build_terms(plugins, cfg, None) if t.name == "cpl"]
    return cfg, term


def test_paper_profile_cpl_equals_the_kornia_formula(plugins, image_pair) -> None:
    source, edited = image_pair
    cfg, cpl = _cpl_of(EditConfig(profile="paper", color_loss="cpl", color_weight=1000.0), plugins)
    assert cfg.options["cpl"] == {"chroma": "kornia"}  # recorded with the result
    s01, e01 = (source + 1) / 2, (edited + 1) / 2
    expected = 1000.0 * (kornia_chroma(e01) - kornia_chroma(s01)).square().mean()
    assert float(cpl(source, edited)) == pytest.approx(float(expected), rel=1e-6)
    assert float(cpl.value_and_grad(source, edited)[0]) == pytest.approx(float(expected), rel=1e-6)
    import kornia  # and the library the paper's code calls (the test extra installs it)
    ycbcr = kornia.color.rgb_to_ycbcr
    assert float(cpl(source, edited)) == pytest.approx(
        float(1000.0 * (ycbcr(e01)[:, 1:] - ycbcr(s01)[:, 1:]).square().mean()), rel=1e-6)
    # the default profile keeps the exact BT.601 rows, which differ from kornia's rounded ones
    _, default = _cpl_of(EditConfig(color_loss="cpl", color_weight=1000.0), plugins)
    assert default.options.chroma == "bt601"
    assert abs(float(default(source, edited)) / float(expected) - 1) > 5e-4  # about 0.1% here


def test_a_chroma_the_user_gives_wins_over_the_profile(plugins) -> None:
    cfg, cpl = _cpl_of(EditConfig(profile="paper", color_loss="cpl", options={"cpl": {"chroma": "bt601"}}),
                       plugins)
    assert cpl.options.chroma == "bt601" and cfg.options["cpl"] == {"chroma": "bt601"}
    _, cpl = _cpl_of(EditConfig(color_loss="cpl", options={"cpl": {"chroma": "kornia"}}), plugins)
    assert cpl.options.chroma == "kornia"


@pytest.mark.parametrize("chroma", ["bt601", "kornia"])
def test_cpl_closed_form_gradient_matches_autograd_for_each_chroma(image_pair, chroma) -> None:
    from spl_losses.color import CPLLoss

    source, edited = image_pair
    cpl = CPLLoss(weight=1000.0, options={"chroma": chroma})
    value, grad = cpl.closed_form(source, edited)[:2]
    e = edited.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(cpl(source, e), e)
    assert float(value) == pytest.approx(float(cpl(source, edited)), rel=1e-6)
    assert torch.allclose(grad, auto, rtol=1e-4, atol=1e-9)
