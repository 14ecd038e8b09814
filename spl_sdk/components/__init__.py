"""Base classes for the seven component kinds that plug-ins register (see :mod:`spl_sdk.hookspecs`)."""

from spl_sdk.components.attention import AttentionController, AttentionMaps
from spl_sdk.components.backbone import CAPABILITIES, Backbone, Conditioning
from spl_sdk.components.base import Component, ComponentOptions
from spl_sdk.components.harmonizer import Harmonizer
from spl_sdk.components.layout import BatchLayout
from spl_sdk.components.loss import ClosedForm, LossTerm
from spl_sdk.components.mask import MaskContext, MaskExtractor
from spl_sdk.components.method import EditMethod, EditOutput, EditRequest
from spl_sdk.components.postprocess import PostProcessor

# the kinds in registry order, each from its base class's own declaration (kind, label, hook)
KIND_BASES: dict[str, type[Component]] = {
    base.kind: base for base in (Backbone, AttentionController, LossTerm, MaskExtractor, PostProcessor,
                                 Harmonizer, EditMethod)
}

__all__ = ["CAPABILITIES", "KIND_BASES", "AttentionController", "AttentionMaps", "Backbone",
           "BatchLayout", "ClosedForm", "Component", "ComponentOptions", "Conditioning", "EditMethod", "EditOutput", "EditRequest",
           "Harmonizer", "LossTerm", "MaskContext", "MaskExtractor", "PostProcessor"]
