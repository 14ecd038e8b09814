"""Non-finite, overflowing and boolean numbers are refused at configuration time; a loss that
overflows during optimization stops with one line instead of writing the input unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from spl_sdk.cli import main
from spl_sdk.config import EditConfig, RefineConfig, build_config
from spl_sdk.errors import ConfigError
from spl_sdk.finite import NonFiniteLossError
from spl_sdk.optimizer import optimize_image
from spl_sdk.plugins import Plugins


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1e308])
def test_weights_must_be_finite_and_bounded(value):
    with pytest.raises(ConfigError, match=r"'structure_weight' = .*allowed: 0 to 1e\+08"):
        build_config(RefineConfig, structure_weight=value)


@pytest.mark.parametrize("field", ["source_guidance", "opt_start"])
def test_every_float_field_refuses_nan(field):
    with pytest.raises(ConfigError, match=f"'{field}' = nan: input should be a finite number"):
        build_config(EditConfig, **{field: float("nan")})


def _options_checked(**fields) -> None:
    """A component's settings (old names too) are checked with all options, before any model loads."""
    from spl_sdk.options import check_options
    from spl_sdk.plugins import Plugins

    check_options(Plugins(load_entrypoints=True, env={}), build_config(EditConfig, **fields).options)


def test_a_component_float_setting_refuses_nan():
    with pytest.raises(ConfigError, match="'mask-extractor/cross-attention.threshold_source' = nan: input should "
                                          "be a finite number"):
        _options_checked(mask_threshold_source=float("nan"))


def test_reweight_factor_must_be_finite():
    with pytest.raises(ConfigError, match="'attention/p2p-reweight.reweight.red' = inf"):
        _options_checked(attention="p2p-reweight", reweight="red=inf")


@pytest.mark.parametrize("field", ["structure_weight", "iterations", "steps", "color_weight"])
def test_booleans_are_not_numbers(field):
    with pytest.raises(ConfigError, match=f"'{field}' = True: a number is expected, not a boolean"):
        build_config(EditConfig, **{field: True})
    with pytest.raises(ConfigError, match="not a boolean"):
        _options_checked(attention="p2p-reweight", reweight={"red": True})


@pytest.mark.parametrize("text", ['{"structure_weight": Infinity}', '{"color_weight": NaN}',
                                  '{"structure_weight": 1e308}', '{"iterations": true}'])
def test_json_config_file(tmp_path: Path, text: str):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match="invalid configuration: '(structure_weight|color_weight|iterations)'"):
        build_config(RefineConfig, path)


@pytest.mark.parametrize("flag", ["inf", "1e308", "nan", "Infinity"])
def test_cli_refuses_before_writing(tmp_path: Path, flag: str):
    src = tmp_path / "s.png"
    Image.new("RGB", (32, 32), (10, 20, 30)).save(src)
    out = tmp_path / "o.png"
    result = CliRunner().invoke(main, ["refine", str(src), str(src), "-o", str(out),
                                       "--structure-weight", flag])
    assert result.exit_code == 1, result.output
    assert "Error: invalid configuration: 'structure_weight'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_loss_term_refuses_a_non_finite_weight():
    cls = Plugins(env={}).loss_term("spl")
    with pytest.raises(ConfigError, match="finite number"):
        cls(weight=float("inf"))


def test_overflowing_loss_stops_the_optimization():
    cls = Plugins(env={}).loss_term("spl")
    src = torch.rand(1, 3, 24, 24) * 2 - 1
    edited = (src + 0.3 * torch.randn_like(src)).clamp(-1, 1)
    term = cls(weight=1e300)  # finite as a Python float, inf once multiplied in float32
    for solver in ("fast", "reference"):
        with pytest.raises(NonFiniteLossError, match="non-finite during optimization"):
            optimize_image(src, edited, [term], iterations=3, solver=solver)
    nan_source = src.clone()
    nan_source[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError):
        optimize_image(nan_source, edited, [cls(weight=1.0)], iterations=2)


@pytest.mark.parametrize(("value", "message"), [(True, "a number is expected, not a boolean"),
                                                (float("inf"), "finite number")])
def test_component_options_refuse_booleans_and_infinities(value, message):
    from spl_sdk.options import options_for

    with pytest.raises(ConfigError, match=f"'spl.(radius|eps)' = .*{message}"):
        options_for(Plugins(env={}), "loss", "spl",
                    {"spl": {"radius": value} if value is True else {"eps": value}})
