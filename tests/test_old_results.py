"""Results written by the previous release replay with ``--config RESULT.png``: identical pixels.

``tests/data/old_result_*.png`` were written by that release's ``spl edit`` from
``tests/data/old_man_64.png``: an LCM edit that set InfEdit and mask settings under their
old top-level names (cross_replace, blend words, mask words and threshold, original_steps),
and an SD3 FlowEdit edit whose options carried FlowEdit's old steps/guidance copies. Both
use the reference solver (the paper's optimizer, fixed by definition), so that a deliberate
change of the default solver does not count as a replay failure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from spl_sdk.cli import main
from spl_sdk.config import EditConfig, build_config, config_of_result
from spl_sdk.imageio import read_metadata

DATA = Path(__file__).parent / "data"


def _replay_identically(old: Path, tmp_path: Path) -> dict:
    """``spl edit --config OLD`` on the photo it was made from: same pixels; the replay's recorded config."""
    out = tmp_path / "replay.png"
    run = CliRunner().invoke(main, ["edit", str(DATA / "old_man_64.png"), "--config", str(old),
                                    "-o", str(out), "-q"])
    assert run.exit_code == 0, run.output
    before, after = (np.asarray(Image.open(p).convert("RGB")) for p in (old, out))
    assert np.array_equal(before, after)
    return read_metadata(out)["config"]


@pytest.mark.parametrize("name", ["lcm", "sd3"])
def test_an_old_result_replays_to_identical_pixels(name, tmp_path) -> None:
    config = _replay_identically(DATA / f"old_result_{name}.png", tmp_path)
    if name == "lcm":  # the old keys are recorded as the options they are now
        assert config["options"]["unified"]["cross_replace"] == 0.6
        assert config["options"]["unified"]["blend_words_target"] == ["woman"]
        assert config["options"]["cross-attention"]["words_source"] == ["man"]
        assert config["options"]["cross-attention"]["threshold_source"] == 0.4
        assert config["options"]["tiny-random-sd15"]["original_steps"] == 40
        assert not {"cross_replace", "mask_words_source", "original_steps"} & set(config)
    else:  # FlowEdit's old option copies are gone; the values used are the edit's fields
        assert "steps" not in config["options"]["flowedit"]
        assert (config["steps"], config["source_guidance"], config["target_guidance"]) == (3, 3.5, 13.5)


@pytest.mark.parametrize("name", ["lcm", "sd3"])
def test_a_release_0_1_result_made_with_its_default_solver_replays_to_identical_pixels(name, tmp_path) -> None:
    # written by spl-sdk 0.1.0 with its default solver ("fast" then: today's "pyramid")
    old = DATA / f"release_0_1_{name}_fast.png"
    assert read_metadata(old)["config"]["solver"] == "fast" and read_metadata(old)["spl_sdk"] == "0.1.0"
    assert _replay_identically(old, tmp_path)["solver"] == "pyramid"


def test_old_keys_and_flags_write_the_options_and_bad_values_name_them(tmp_path, plugins) -> None:
    from spl_sdk.errors import ConfigError
    from spl_sdk.options import check_options

    old = config_of_result(DATA / "old_result_lcm.png")
    assert "cross_replace" in old  # the file really is in the old layout
    cfg = build_config(EditConfig, DATA / "old_result_lcm.png")
    assert cfg.options["attention/unified"]["cross_replace"] == 0.6
    with pytest.raises(ConfigError, match=r"'attention/unified.cross_replace' = 1.5.*0 to 1"):
        check_options(plugins, build_config(EditConfig, cross_replace=1.5).options)
    listing = CliRunner().invoke(main, ["plugins", "cross-attention"]).output
    assert "words_source" in listing and "threshold_target" in listing
