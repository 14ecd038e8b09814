"""Base classes for the six component kinds that plug-ins register (see :mod:`spl_sdk.hookspecs`)."""

from spl_sdk.components.attention import AttentionController, AttentionMaps
from spl_sdk.components.backbone import Backbone
from spl_sdk.components.base import Component
from spl_sdk.components.harmonizer import Harmonizer
from spl_sdk.components.loss import LossTerm
from spl_sdk.components.mask import MaskContext, MaskExtractor
from spl_sdk.components.postprocess import PostProcessor

KIND_BASES: dict[str, type[Component]] = {
    "backbone": Backbone,
    "attention": AttentionController,
    "loss": LossTerm,
    "mask": MaskExtractor,
    "postprocess": PostProcessor,
    "harmonizer": Harmonizer,
}

__all__ = ["KIND_BASES", "AttentionController", "AttentionMaps", "Backbone", "Component", "Harmonizer",
           "LossTerm", "MaskContext", "MaskExtractor", "PostProcessor"]
