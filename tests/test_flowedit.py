"""The ``flowedit`` method on the tiny flow backbones: identity, SPL injection, defaults, refusals, masks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from spl_backbones.tiny_flow import TinyRandomFlux, TinyRandomSD3
from spl_losses.spl import SPLLoss
from spl_methods.flowedit import FAMILY_DEFAULTS, FlowEdit, defaults_for
from spl_sdk import EditConfig, Editor
from spl_sdk.components.method import EditRequest, Sampling
from spl_sdk.errors import ConfigError, IncompatibleError, PromptError, SplWarning
from spl_sdk.geometry import resize
from spl_sdk.imageio import pil_to_tensor
from spl_sdk.plugins import Plugins

SIZE = 128


@pytest.fixture(scope="module")
def photo():
    from conftest import EXAMPLES

    with Image.open(EXAMPLES / "old_man.png") as img:
        return pil_to_tensor(img.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS))


def _editor(backbone, **cfg) -> Editor:
    config = EditConfig(**{"backbone": backbone.name, "working_size": SIZE, "device": "cpu", **cfg})
    return Editor(backbone, config, Plugins(load_entrypoints=True, env={}))


def _request(backbone, z0, source, target, **kw) -> EditRequest:
    return EditRequest(backbone=backbone, source_prompt=source, target_prompt=target, z0=z0, **kw)


# ------------------------------------------------------------------ the method itself
@pytest.mark.parametrize("name", ["sd3", "flux"])
def test_equal_prompts_and_guidance_return_the_source_latent(name, sd3, flux, photo):
    backbone = sd3 if name == "sd3" else flux
    z0 = backbone.encode_image(photo)
    steps: list[tuple[int, int]] = []
    out = FlowEdit().edit(_request(backbone, z0, "a photo of an old man", "a photo of an old man",
                                   steps=6, source_guidance=3.0, target_guidance=3.0,
                                   on_step=lambda i, n, x0: steps.append((i, n))))
    assert torch.equal(out.latent, z0)  # so the edit decodes to the VAE round trip
    assert steps == [(i, 6) for i in range(6)]


def test_different_prompts_edit_and_cost_n_max_times_n_avg_calls(flux, photo):
    z0 = flux.encode_image(photo)
    method = FlowEdit({"n_max": 4, "n_avg": 2})
    out = method.edit(_request(flux, z0, "a photo of an old man", "a painting of a young woman",
                               steps=6))
    assert (out.latent - z0).abs().mean() > 1e-3
    assert out.extras["denoiser_calls"] == 8 and out.extras["settings"].n_max == 4


def test_family_defaults_are_the_published_settings(sd3, flux):
    assert defaults_for(sd3) == FAMILY_DEFAULTS["sd3"]
    assert (FAMILY_DEFAULTS["sd3"].steps, FAMILY_DEFAULTS["sd3"].n_max) == (50, 33)
    assert (FAMILY_DEFAULTS["sd3"].source_guidance, FAMILY_DEFAULTS["sd3"].target_guidance) == (3.5, 13.5)
    dev = defaults_for(flux)
    assert (dev.steps, dev.n_max, dev.source_guidance, dev.target_guidance, dev.n_min, dev.n_avg) == \
        (28, 24, 1.5, 5.5, 0, 1)
    from spl_backbones.flux import FluxSchnell

    assert defaults_for(FluxSchnell) == FAMILY_DEFAULTS["flux-schnell"]


def test_settings_take_edit_fields_then_family_defaults(sd3):
    s = FlowEdit().settings(sd3)
    assert (s.steps, s.n_max, s.source_guidance, s.target_guidance) == (50, 33, 3.5, 13.5)
    assert FlowEdit().sampling(sd3) == Sampling(50, 3.5, 13.5)  # what the plan fills in
    s = FlowEdit().settings(sd3, steps=25, target_guidance=7.0)
    assert (s.steps, s.n_max, s.target_guidance) == (25, 16, 7.0)  # n_max scaled with T: 25 * 33 / 50
    s = FlowEdit({"n_max": 7}).settings(sd3, steps=10, target_guidance=9.0)
    assert (s.steps, s.n_max, s.target_guidance) == (10, 7, 9.0)
    assert "steps" not in FlowEdit.Options.model_fields  # one owner: the edit's --steps
    with pytest.raises(ConfigError, match="n_min"):
        FlowEdit({"n_min": 5}).settings(sd3, steps=6)


def test_flowedit_with_n_min_samples_the_target_at_the_end(sd3, photo):
    z0 = sd3.encode_image(photo)
    out = FlowEdit({"n_max": 4, "n_min": 2}).edit(_request(sd3, z0, "an old man", "an old man", steps=5))
    # equal prompts, but the last steps sample plainly: the result leaves the source
    assert not torch.equal(out.latent, z0)


# ------------------------------------------------------------------ through the editor
def test_editor_uses_the_familys_steps_and_guidance_when_unset(flux, photo):
    seen: list[tuple[int, int]] = []
    editor = _editor(flux, structure_loss=None, post_process=False)
    result = editor.edit(photo, "a photo of an old man", "a photo of an old man",
                         callback=lambda i, n, _: seen.append((i, n)))
    cfg = result.config
    assert (cfg.method, cfg.steps, cfg.source_guidance, cfg.target_guidance) == ("flowedit", 28, 1.5, 5.5)
    assert seen[-1] == (28, 28)
    result = editor.edit(photo, "a photo", "a painting", steps=4, target_guidance=2.0)
    assert (result.config.steps, result.config.target_guidance, result.config.source_guidance) == (4, 2.0, 1.5)


def test_flowedit_takes_more_steps_than_lcms_original_steps(sd3, photo):
    seen: list[tuple[int, int]] = []
    editor = _editor(sd3, structure_loss=None, post_process=False, steps=60, options={"flowedit": {"n_max": 2}})
    result = editor.edit(photo, "a photo", "a painting", callback=lambda i, n, _: seen.append((i, n)))
    assert result.config.steps == 60 and "sd3" not in str(result.config.options)  # no LCM schedule option
    assert seen[-1] == (60, 60)


def test_an_attention_controller_is_refused_by_flowedit_but_the_default_passes(sd3, photo):
    message = (r"^method 'flowedit' drives no attention controller, so attention 'p2p-replace' would be "
               r"ignored; leave --attention out")
    per_edit = _editor(sd3, structure_loss=None, post_process=False, steps=2)
    in_config = _editor(sd3, structure_loss=None, post_process=False, steps=2, attention="p2p-replace")
    for run in (lambda: per_edit.edit(photo, "a photo", "a painting", attention="p2p-replace"),
                lambda: in_config.edit(photo, "a photo", "a painting")):
        with pytest.raises(ConfigError, match=message) as info:
            run()
        assert "\n" not in str(info.value)
    # the default value, as every saved result's configuration carries it, says nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = per_edit.edit(photo, "a photo", "a painting", attention="unified")
    assert result.config.attention == "unified"


def test_prompts_past_clips_77_tokens_warn_and_only_t5s_limit_refuses(sd3, flux, photo, monkeypatch):
    monkeypatch.setattr(flux, "max_sequence_length", 128)  # the tiny models read 64 T5 tokens
    long = "a photo of " * 40  # 122 CLIP tokens, 121 T5 tokens
    editor = _editor(flux, structure_loss=None, post_process=False, steps=2)
    with pytest.warns(SplWarning, match=r"source prompt is 122 CLIP tokens long: the CLIP text encoder "
                                        r"reads only its first 77 .*T5 reads all of it"):
        editor.edit(photo, long, "a painting")
    with pytest.raises(PromptError, match=r"^the target prompt is 201 T5 tokens long but the model reads "
                                          r"at most 128; shorten it by 73 tokens\.$"):
        editor.edit(photo, "a photo", "word " * 200)
    monkeypatch.setattr(sd3, "text_encoder_3", None)  # SD3 without T5: CLIP's 77 is the limit
    with pytest.raises(PromptError, match=r"is 122 tokens long but the text encoder reads at most 77"):
        _editor(sd3, structure_loss=None, post_process=False, steps=2).edit(photo, long, "a painting")


def test_editor_identity_edit_is_the_vae_round_trip(sd3, photo):
    editor = _editor(sd3, structure_loss=None, post_process=False, steps=4)
    result = editor.edit(photo, "an old man", "an old man", source_guidance=2.0, target_guidance=2.0)
    round_trip = sd3.decode_latents(sd3.encode_image(photo))
    got = pil_to_tensor(result.image)
    assert (got - round_trip).abs().max() <= 2 / 255 + 1e-6  # one 8-bit quantization step


def _spl(source: torch.Tensor, edited: torch.Tensor) -> float:
    return float(SPLLoss()(source, edited))


def _lossless_vae(backbone):
    """The backbone with its random VAE swapped for an exact one (2x2 pixel unshuffle, 12 of 16 channels).

    A randomly initialized VAE loses the photo's structure in a round trip (SPL 216 against the
    photo at 128 px), so no injection could show through it; with an exact VAE the test sees the
    method: the random transformer and text encoders, FlowEdit's state and the put-back.
    """
    backbone.encode_image = lambda x: F.pad(F.pixel_unshuffle(x.float(), 2), (0, 0, 0, 0, 0, 4))
    backbone.decode_latents = lambda z: F.pixel_shuffle(z[:, :12].float(), 2).clamp(-1, 1)
    backbone.vae_scale_factor, backbone.size_multiple = 2, 4
    return backbone


@pytest.mark.parametrize("cls", [TinyRandomSD3, TinyRandomFlux])
def test_spl_injection_lowers_the_final_spl(cls, photo):
    backbone = _lossless_vae(cls.load(device="cpu"))
    image = resize(photo, (64, 64))
    kw = {"post_process": False, "steps": 8, "iterations": 30, "working_size": 64}
    source, target = "a photo of an old man", "a colorful painting of a young woman"
    plain = _editor(backbone, opt_start=1.0, **kw).edit(image, source, target)
    injected = _editor(backbone, opt_start=0.8, **kw).edit(image, source, target)
    before, after = _spl(image, pil_to_tensor(plain.image)), _spl(image, pil_to_tensor(injected.image))
    # measured: sd3 133 -> 0.11, flux 4.3 -> 0.11 (an injection at the last step is the result)
    assert after < 0.1 * before, (before, after)
    assert injected.timings["optimization"] > 0 and plain.timings["optimization"] == 0


# ------------------------------------------------------------------ refusals and masks
def test_infedit_on_a_flow_backbone_is_refused_in_one_sentence(flux, photo):
    with pytest.raises(IncompatibleError, match="flowedit") as info:
        _editor(flux, method="infedit").edit(photo, "a", "b")
    assert "\n" not in str(info.value)


def test_flowedit_on_an_lcm_backbone_is_refused_in_one_sentence(tiny_backbone, example_image):
    editor = Editor(tiny_backbone, EditConfig(backbone="tiny-random-sd15", method="flowedit", device="cpu"),
                    Plugins(load_entrypoints=True, env={}))
    with pytest.raises(IncompatibleError, match="flow") as info:
        editor.edit(example_image, "a", "b")
    assert "\n" not in str(info.value) and "infedit" in str(info.value)


def test_cross_attention_masks_are_refused_with_a_pointer_to_mask_file(flux, photo):
    editor = _editor(flux, structure_area="masked", mask_words_source="man")
    with pytest.raises(IncompatibleError, match="--mask FILE") as info:
        editor.edit(photo, "a photo of an old man", "a painting of an old man")
    assert "cross-attention" in str(info.value) and "\n" not in str(info.value)


def test_a_mask_file_restricts_the_losses_with_a_flow_backbone(flux, photo, tmp_path):
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[..., : SIZE // 2] = 1
    path = tmp_path / "mask.png"
    Image.fromarray((mask[0, 0].numpy() * 255).astype("uint8")).save(path)
    editor = _editor(flux, structure_area="masked", mask_file=path, steps=3, iterations=5)
    result = editor.edit(photo, "a photo of an old man", "a painting of an old man")
    got = torch.from_numpy(np.asarray(result.mask, dtype=np.float32)) / 255
    torch.testing.assert_close(got, mask[0, 0])
    assert result.image.size == (SIZE, SIZE)


def test_working_size_is_a_multiple_of_16_for_flow_backbones(flux, monkeypatch):
    shapes: list[tuple[int, ...]] = []
    encode = flux.encode_image
    monkeypatch.setattr(flux, "encode_image", lambda image: shapes.append(tuple(image.shape)) or encode(image))
    result = _editor(flux, structure_loss=None, post_process=False, steps=2, working_size=72).edit(
        torch.zeros(1, 3, 100, 150), "a", "a")
    assert result.image.size == (150, 100)
    assert shapes[0][-2:] == (48, 64)  # 72 x 48 in multiples of 16 (multiples of 8 would keep 48 x 72)


# ------------------------------------------------------------------ the command line
def test_spl_edit_runs_flowedit_and_records_the_values_used(tmp_path, example_image):
    from click.testing import CliRunner

    from spl_sdk.cli import main
    from spl_sdk.imageio import read_metadata

    photo, out = tmp_path / "photo.png", tmp_path / "out.png"
    example_image.resize((160, 120)).save(photo)
    fast = ["--working-size", "64", "--iterations", "3", "-s", "a photo of a man", "-t", "a painting of a man"]
    run = CliRunner().invoke(main, ["edit", str(photo), "--backbone", "tiny-random-flux", "--method",
                                    "flowedit", "--steps", "3", "-o", str(out), *fast])
    assert run.exit_code == 0, run.output
    config = read_metadata(out)["config"]
    assert (config["method"], config["steps"], config["target_guidance"]) == ("flowedit", 3, 5.5)
    run = CliRunner().invoke(main, ["edit", str(photo), "--backbone", "tiny-random-flux", "--method",
                                    "infedit", "-o", str(tmp_path / "no.png"), *fast])
    assert run.exit_code != 0 and "use --method flowedit" in run.output
    assert "Traceback" not in run.output and not (tmp_path / "no.png").exists()


def test_attention_only_settings_are_refused_by_flowedit_when_changed(sd3, photo):
    editor = _editor(sd3, structure_loss=None, post_process=False, steps=2)
    with pytest.raises(ConfigError, match=r"^method 'flowedit' drives no attention controller, so the "
                                          r"options cross_replace, blend_words_target of 'unified' would "
                                          r"be ignored; leave them out") as info:
        editor.edit(photo, "a photo", "a painting", cross_replace=0.5, blend_words_target=["painting"])
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"so the option self_replace of 'unified' would be ignored; leave it out"):
        editor.edit(photo, "a photo", "a painting", options={"unified": {"self_replace": 0.1}})
    # their defaults, as every saved result's configuration carries them, pass; none is recorded
    result = editor.edit(photo, "a photo", "a painting", cross_replace=0.8, self_replace=0.8, reweight={})
    assert "unified" not in result.config.options
