"""Building the structure and color terms of a run from its RefineConfig."""

from __future__ import annotations

import pytest
import torch

from spl_losses import CPLLoss, L1Loss, SPLLoss
from spl_sdk.config import RefineConfig
from spl_sdk.errors import ConfigError, UnknownComponentError
from spl_sdk.terms import build_terms


def test_default_config_gives_spl_on_the_whole_image(plugins):
    (term,) = build_terms(plugins, RefineConfig(), None)
    assert isinstance(term, SPLLoss) and term.weight == 10000.0 and term.mask is None


def test_structure_and_color_terms_with_their_weights(plugins):
    cfg = RefineConfig(structure_loss="l1", structure_weight=5.0, color_loss="cpl", color_weight=250.0)
    structure, color = build_terms(plugins, cfg, None)
    assert isinstance(structure, L1Loss) and structure.weight == 5.0
    assert isinstance(color, CPLLoss) and color.weight == 250.0


def test_mask_goes_only_to_terms_on_the_masked_area(plugins):
    mask = torch.rand(1, 1, 8, 8)
    cfg = RefineConfig(color_loss="cpl", color_area="masked")
    structure, color = build_terms(plugins, cfg, mask)
    assert structure.mask is None and color.mask is mask


def test_masked_area_without_a_mask_is_a_config_error(plugins):
    with pytest.raises(ConfigError, match="mask") as err:
        build_terms(plugins, RefineConfig(structure_area="masked"), None)
    assert "structure_area" in str(err.value) and "whole" in str(err.value)


def test_turned_off_terms_and_unknown_names(plugins):
    assert build_terms(plugins, RefineConfig(structure_loss="none"), None) == []
    with pytest.raises(UnknownComponentError, match="nosuchloss"):
        build_terms(plugins, RefineConfig(structure_loss="nosuchloss"), None)


def test_built_terms_carry_each_loss_s_default_weight(plugins):
    from loss_sum import total_loss

    g = torch.Generator().manual_seed(0)
    s = torch.rand(1, 3, 16, 12, generator=g) * 2 - 1
    e = torch.rand(1, 3, 16, 12, generator=g) * 2 - 1
    terms = build_terms(plugins, RefineConfig(color_loss="cpl"), None)
    expected = float(SPLLoss()(s, e)) + float(CPLLoss()(s, e))
    assert total_loss(terms, s, e) == pytest.approx(expected, rel=1e-6)
    assert total_loss([], s, e) == 0.0
