"""Loss weights default to the loss's default_weight; post-processors form an ordered list."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from spl_sdk import hookimpl
from spl_sdk.cli import main
from spl_sdk.components import LossTerm, PostProcessor
from spl_sdk.config import EditConfig, RefineConfig
from spl_sdk.editor import Editor
from spl_sdk.imageio import read_metadata
from spl_sdk.options import with_resolved_options


class HalfLoss(LossTerm):
    """A loss with its own default weight."""

    name = "half"
    default_weight = 0.5

    def value(self, s: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return ((s - e) ** 2).mean()


class Darken(PostProcessor):
    """Darkens the image a little (records the order it ran in)."""

    name = "darken"
    calls: list[str] = []

    def process(self, source, edited, terms, callback=None):
        Darken.calls.append("darken")
        return (edited - 0.1).clamp(-1, 1)


class _Plugin:
    @hookimpl
    def spl_register_loss_terms(self, register):
        register(HalfLoss)

    @hookimpl
    def spl_register_post_processors(self, register):
        register(Darken)


@pytest.fixture
def more(plugins):
    plugins.register(_Plugin(), name="more", package="more-pkg")
    return plugins


def test_unset_weights_take_the_losses_default_weight_and_are_recorded(more) -> None:
    cfg = with_resolved_options(more, RefineConfig(color_loss="cpl"))
    assert (cfg.structure_weight, cfg.color_weight) == (10000.0, 1000.0)  # spl's and cpl's
    cfg = with_resolved_options(more, RefineConfig(structure_loss="half"))
    assert cfg.structure_weight == 0.5
    assert with_resolved_options(more, RefineConfig(structure_weight=3.0)).structure_weight == 3.0


def test_refine_records_the_weight_it_used(tmp_path, example_image) -> None:
    photo = tmp_path / "p.png"
    example_image.resize((32, 32)).save(photo)
    run = CliRunner().invoke(main, ["refine", str(photo), str(photo), "-o", str(tmp_path / "o.png"),
                                    "--iterations", "1", "--cpl", "-q"])
    assert run.exit_code == 0, run.output
    config = read_metadata(tmp_path / "o.png")["config"]
    assert (config["structure_weight"], config["color_weight"]) == (10000.0, 1000.0)


def test_post_processors_run_in_order_and_loss_refine_stays(more, tiny_backbone, example_image) -> None:
    assert EditConfig().post_processors == ["loss-refine"]
    with pytest.warns(FutureWarning, match="post_processor is deprecated"):
        old = EditConfig(post_processor="darken")
    assert old.post_processors == ["loss-refine", "darken"]  # no longer replaces loss-refine
    assert EditConfig(post_processor="loss-refine").post_processors == ["loss-refine"]  # old records
    editor = Editor(tiny_backbone, EditConfig(backbone="tiny-random-sd15", device="cpu", working_size=64,
                                              steps=2, iterations=2), more)
    phases: list[str] = []
    Darken.calls.clear()
    result = editor.edit(example_image.resize((64, 64)), "a photo", "a painting",
                         post_processors="loss-refine,darken",
                         on_phase=lambda phase, done, total: phases.append(phase))
    assert Darken.calls == ["darken"]
    assert result.config.post_processors == ["loss-refine", "darken"]
    assert "post-processing loss-refine" in phases and phases.index("post-processing loss-refine") < \
        len(phases) - 1
    Darken.calls.clear()
    editor.edit(example_image.resize((64, 64)), "a photo", "a painting", post_processors=[])
    assert Darken.calls == []
