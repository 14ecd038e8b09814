"""Options per component: parsing, name resolution, one-line errors, and each built-in option's effect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from clash_plugin import clash_module
from pydantic import Field, ValidationError

from spl_sdk.components import ComponentOptions, LossTerm
from spl_sdk.config import EditConfig, RefineConfig, build_config
from spl_sdk.errors import ConfigError
from spl_sdk.options import (
    check_options,
    construct,
    merge_options,
    options_for,
    parse_option,
    parse_options,
    resolve_key,
    resolved_options,
)
from spl_sdk.plugins import Plugins

SPL_FIELDS = "radius (int, 1 to 64, default 5), eps (float, > 0, <= 1, default 0.0001)"


# ------------------------------------------------------------------ parsing and merging
def test_values_are_json_when_they_parse_else_text() -> None:
    assert parse_option("spl.radius=3") == ("spl", "radius", 3)
    assert parse_option("cross-attention.eps=1e-3") == ("cross-attention", "eps", 0.001)
    assert parse_option("tv.norm=isotropic") == ("tv", "norm", "isotropic")
    assert parse_option("x.flag=true") == ("x", "flag", True)
    assert parse_option("x.model=null") == ("x", "model", None)
    assert parse_option("loss/spl.eps = 0.01") == ("loss/spl", "eps", 0.01)
    assert parse_option('x.words=["a", "b"]') == ("x", "words", ["a", "b"])
    assert parse_options(["spl.radius=3", "spl.eps=0.01", "spl.radius=4"]) == {
        "spl": {"radius": 4, "eps": 0.01}}


@pytest.mark.parametrize("text", ["spl.radius", "radius=3", ".radius=3", "spl.=3"])
def test_malformed_option_is_one_line(text: str) -> None:
    with pytest.raises(ConfigError, match=r"must look like NAME\.FIELD=VALUE, e\.g\. spl\.radius=3") as info:
        parse_option(text)
    assert "\n" not in str(info.value)


def test_merge_is_field_by_field_and_later_wins() -> None:
    merged = merge_options({"spl": {"radius": 3, "eps": 0.1}}, None, {"spl": {"eps": 0.2}, "tv": {}})
    assert merged == {"spl": {"radius": 3, "eps": 0.2}, "tv": {}}
    with pytest.raises(ConfigError, match="options of 'spl' must be a mapping"):
        merge_options({"spl": 3})


# ------------------------------------------------------------------ component base
def test_component_options_forbid_unknown_fields_and_non_finite_numbers() -> None:
    class Opts(ComponentOptions):
        eps: float = Field(1e-3, gt=0)

    with pytest.raises(ValidationError):
        Opts(epss=1)
    with pytest.raises(ValidationError):
        Opts(eps=float("inf"))
    o = Opts()
    with pytest.raises(ValidationError):  # validate_assignment
        o.eps = -1


def test_every_component_kind_takes_options_and_defaults(plugins: Plugins) -> None:
    spl = plugins.loss_term("spl")
    assert spl().options == spl.Options() and spl().radius == 5
    assert spl(options=spl.Options(radius=2)).radius == 2
    assert spl(options={"eps": 0.5}).eps == 0.5  # a mapping is validated too
    mask = plugins.mask_extractor("cross-attention")()
    assert mask.options.eps == 1e-2  # the method's published value stays the default
    post = plugins.post_processor("loss-refine")(options=None)
    assert post.options == ComponentOptions()
    with pytest.raises(TypeError, match="options of SPLLoss must be"):
        spl(options=3)


def test_describe_options_gives_name_type_default_range_description(plugins: Plugins) -> None:
    (radius, eps, residual) = plugins.loss_term("spl").describe_options()
    assert (residual.type, residual.default) == ("'centered' | 'expanded'", "centered")
    assert (radius.name, radius.type, radius.default, radius.range) == ("radius", "int", 5, "1 to 64")
    assert (eps.name, eps.type, eps.range) == ("eps", "float", "> 0, <= 1") and eps.description
    assert plugins.loss_term("l1").describe_options() == []


# ------------------------------------------------------------------ names and errors
def test_old_names_of_the_infedit_controller_still_reach_it(plugins: Plugins) -> None:
    # 0.1 named the controller 'infedit' like the method and wrote its options as attention/infedit
    check_options(plugins, {"attention/infedit": {"blend_threshold": 0.5}})
    assert options_for(plugins, "attention", "unified",
                       {"attention/infedit": {"blend_threshold": 0.5}}).blend_threshold == 0.5
    assert resolve_key(plugins, "attention/infedit") == ("attention", "unified")
    assert resolve_key(plugins, "infedit") == ("method", "infedit")  # one component per name now
    assert resolve_key(plugins, "mask/cross-attention") == ("mask-extractor", "cross-attention")
    assert plugins.attention_controller("infedit") is plugins.attention_controller("unified")
    assert plugins.names("mask") == plugins.names("mask-extractor")


def test_a_name_in_two_kinds_needs_kind_slash_name(plugins: Plugins) -> None:
    plugins.register(clash_module(), name="clash")
    with pytest.raises(ConfigError) as info:
        check_options(plugins, {"spl": {"radius": 3}})
    message = str(info.value)
    assert "'spl' in options names a loss term and a mask extractor" in message
    assert "loss/spl or mask-extractor/spl" in message and "\n" not in message
    assert resolve_key(plugins, "loss/spl") == ("loss", "spl")
    raw = {"loss/spl": {"radius": 3}, "mask/spl": {"level": 0.2}}  # 0.1's kind id: still read
    check_options(plugins, raw)
    assert options_for(plugins, "loss", "spl", raw).radius == 3
    assert options_for(plugins, "mask-extractor", "spl", raw).level == 0.2


@pytest.mark.parametrize(("raw", "needles"), [
    ({"spll": {"radius": 3}}, ["unknown component 'spll' in options", "did you mean 'spl'?",
                               "components with options:", "cross-attention"]),
    ({"spl": {"radiu": 3}}, ["unknown option 'spl.radiu' (did you mean 'radius'?)", SPL_FIELDS]),
    ({"spl": {"radius": 0}}, ["'spl.radius' = 0: input should be greater than or equal to 1", SPL_FIELDS]),
    ({"spl": {"eps": "tiny"}}, ["'spl.eps' = 'tiny'", SPL_FIELDS]),
    ({"spl": {"eps": float("nan")}}, ["finite number", SPL_FIELDS]),
    ({"l1": {"weight": 3}}, ["loss term 'l1' has no options, so 'l1.weight' cannot be set"]),
    ({"los/spl": {}}, ["unknown component kind 'los'", "kinds: backbone, "]),
    ({"loss/nope": {}}, ["unknown loss term 'nope'", "available: "]),
    ({"openai": {"api_key": 12345678901, "timeout": 0}}, ["'openai.api_key' = ***", "timeout"]),
])
def test_each_mistake_is_one_line_that_lists_the_fields(plugins: Plugins, raw: dict, needles: list) -> None:
    with pytest.raises(ConfigError) as info:
        check_options(plugins, raw)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)
    assert "12345678901" not in message  # a key is never echoed


# ------------------------------------------------------------------ configuration
def test_config_files_and_flags_merge_options(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("options:\n  spl: {radius: 3, eps: 0.01}\n")
    (tmp_path / "a.toml").write_text("[options.spl]\nradius = 3\neps = 0.01\n")
    (tmp_path / "a.json").write_text(json.dumps({"options": {"spl": {"radius": 3, "eps": 0.01}}}))
    for name in ("a.yaml", "a.toml", "a.json"):
        cfg = build_config(EditConfig, tmp_path / name, options={"spl": {"eps": 0.02}})
        assert cfg.options == {"spl": {"radius": 3, "eps": 0.02}}, name
    assert RefineConfig(options=["spl.radius=2"]).options == {"spl": {"radius": 2}}
    with pytest.raises(ConfigError, match="options of 'spl' must be a mapping"):
        build_config(EditConfig, options={"spl": 3})


def test_resolved_options_hold_every_value_of_the_used_components(plugins: Plugins) -> None:
    cfg = EditConfig(options={"spl": {"radius": 3}, "cross-attention": {"eps": 1e-3}})
    resolved = resolved_options(plugins, cfg)
    assert resolved["spl"] == {"radius": 3, "eps": 1e-4, "residual": "centered"}
    # every built-in has a name of its own, so the recorded keys are bare names
    assert resolved["unified"] == {"blend_threshold": 0.3, "blend_dilation": 1, "scores": "sdpa",
                                   "cross_replace": 0.8, "self_replace": 0.8,
                                   "blend_words_source": [], "blend_words_target": []}
    assert all("/" not in key for key in resolved)
    assert "cross-attention" not in resolved  # no masked area: the extractor is not used
    masked = cfg.model_copy(update={"structure_area": "masked"})
    assert resolved_options(plugins, masked)["cross-attention"]["eps"] == 1e-3


# ------------------------------------------------------------------ built-in options take effect
def _pair(size: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    source = torch.rand(1, 3, size, size, generator=g) * 2 - 1
    edited = (source + 0.3 * torch.randn(1, 3, size, size, generator=g)).clamp(-1, 1)
    return source, edited


def test_spl_radius_and_eps_change_the_loss(plugins: Plugins) -> None:
    source, edited = _pair()
    spl = plugins.loss_term("spl")
    base = float(spl()(source, edited))
    assert float(spl(options=spl.Options(radius=2))(source, edited)) != pytest.approx(base)
    assert float(spl(options=spl.Options(eps=0.1))(source, edited)) != pytest.approx(base)
    # the fast solver's closed form reads the same options
    value = spl(options=spl.Options(radius=2)).value_grad_and_curvature(source, edited).value
    assert float(value) == pytest.approx(float(spl(options=spl.Options(radius=2))(source, edited)), rel=1e-4)


def test_cross_attention_eps_and_radii_change_the_mask(plugins: Plugins, example_image) -> None:
    from spl_sdk.imageio import pil_to_tensor

    image = pil_to_tensor(example_image.resize((128, 128)))
    low = torch.zeros(1, 1, 16, 16)
    low[..., 5:11, 4:12] = 1
    cls = plugins.mask_extractor("cross-attention")
    default = cls().upsample(low, image)
    for options in ({"eps": 1e-3}, {"radius": 3}, {"radius_step": 0}):
        other = construct(plugins, "mask-extractor", "cross-attention", {"cross-attention": options})
        assert not torch.allclose(other.upsample(low, image), default), options
    bilinear = plugins.mask_extractor("cross-attention-bilinear").Options.model_fields
    assert "words_source" in bilinear and not {"eps", "radius", "radius_step"} & set(bilinear)


def test_local_blend_threshold_reaches_the_blend(plugins: Plugins, tiny_backbone) -> None:
    cfg = EditConfig(blend_words_source=["cat"], blend_words_target=["dog"],
                     options={"unified": {"blend_threshold": 0.6, "blend_dilation": 0}})
    controller = construct(plugins, "attention", "unified", cfg.options, backbone=tiny_backbone,
                           source_prompt="a cat", target_prompt="a dog", num_steps=2)
    assert (controller.local_blend.threshold, controller.local_blend.dilation) == (0.6, 0)
    # the blend words are the controller's options too (old flags write them there)
    default = construct(plugins, "attention", "p2p-reweight", {"p2p-reweight": {"blend_words_source": "cat"}},
                        backbone=tiny_backbone, source_prompt="a cat", target_prompt="a dog", num_steps=2)
    assert default.local_blend.threshold == 0.3


def test_openai_harmonizer_takes_options_and_never_keeps_the_key(plugins: Plugins) -> None:
    key = "sk-options-test-0123456789"
    raw = {"openai": {"model": "gpt-opt", "timeout": 5, "max_retries": 0, "api_key": key}}
    harmonizer = construct(plugins, "harmonizer", "openai", raw)
    assert (harmonizer.settings.model, harmonizer.client.timeout, harmonizer.client.max_retries) == (
        "gpt-opt", 5, 0)
    assert key not in json.dumps(harmonizer.options.model_dump(mode="json"))
    assert key not in repr(harmonizer) and "api_key" not in harmonizer.options.model_dump()


def test_secrets_never_reach_the_recorded_options() -> None:
    from pydantic import SecretStr

    from spl_sdk.options import public_dump

    class Opts(ComponentOptions):
        token: SecretStr | None = None
        hidden: str = Field("x", repr=False)
        size: int = 3

    assert public_dump(Opts(token="sk-1234567890", hidden="y")) == {"size": 3}


class _Plain(LossTerm):
    """A third-party term without options: the default empty Options applies."""

    name = "plain"

    def value(self, source01, edited01):
        return (source01 - edited01).abs().mean()


def test_a_component_without_options_gets_the_empty_model() -> None:
    assert _Plain().options == ComponentOptions() and _Plain.describe_options() == []
