"""Base class of edit methods (the seventh component kind) and the request/response they exchange."""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

from spl_sdk.components.attention import AttentionController, BatchLayout
from spl_sdk.components.backbone import Backbone
from spl_sdk.components.base import Component, ComponentOptions
from spl_sdk.errors import IncompatibleError
from spl_sdk.lazy import torch

Injector: TypeAlias = "Callable[[torch.Tensor], torch.Tensor]"
StepCallback: TypeAlias = "Callable[[int, int, torch.Tensor], None]"

__all__ = ["DEFAULT_SAMPLING", "BatchLayout", "EditMethod", "EditOutput", "EditRequest", "Injector",
           "Sampling", "StepCallback"]


@dataclass
class EditRequest:
    """Everything a method needs for one edit; the editor builds it, the method reads it."""

    backbone: Backbone
    source_prompt: str
    target_prompt: str
    z0: torch.Tensor  # source latent (backbone.encode_image), float32
    controller: AttentionController | None = None
    steps: int | None = None  # None: the method's (or family's) default
    source_guidance: float | None = None
    target_guidance: float | None = None
    seed: int = 0
    opt_start: float = 1.0  # inject at the steps with i / n >= opt_start
    inject: Injector | None = None  # clean estimate of the edited branch -> refined clean latent
    on_step: StepCallback | None = None  # (i, n, clean estimate of the edited branch)
    original_steps: int | None = None  # LCM original_inference_steps (passed to backbone.timesteps)
    # When set (``--profile paper``), every random draw of the method comes from this generator,
    # in the model's dtype on its device, continuing the stream the editor began with the source
    # latent's posterior sample (docs/method.md section 10); None: the method's own seeded generator.
    generator: torch.Generator | None = None
    # The source image at the working size, in [-1, 1] (instruction-edit models read the photo itself).
    source_image: torch.Tensor | None = None
    # The edit's mask (1, 1, h, w) in [0, 1] at the working size, white = inside, when one is given.
    mask: torch.Tensor | None = None
    # The region of an edit confined to it (edit_area 'masked'), (1, 1, h, w) in [0, 1] at the working
    # size; None: the whole image. A method holds its latent outside it at the photo's own latent brought
    # to the same noise level (spl_sdk.region.hold_outside); the editor composites the photo back.
    region: torch.Tensor | None = None


@dataclass(frozen=True)
class Sampling:
    """A method's own values for the edit's fields left None: steps, guidance scales, alignment.

    A scale the method does not use is None (it stays None in the recorded configuration).
    """

    steps: int
    source_guidance: float | None
    target_guidance: float | None
    align: str = "off"  # register the decoded edit onto the photo first (docs/align.md)


# InfEdit's published settings (docs/method.md section 7)
DEFAULT_SAMPLING = Sampling(steps=15, source_guidance=1.0, target_guidance=2.0)


@dataclass
class EditOutput:
    """The edited clean latent plus time spent, and any extra tensors a method wants to expose.

    ``region`` (1, 1, h, w) in [0, 1], when set, confines the edit: the editor composites the
    final image through it (feathered) so that pixels outside are exactly the photo's.
    """

    latent: torch.Tensor
    unet_seconds: float = 0.0
    text_seconds: float = 0.0
    steps_injected: list[int] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    region: torch.Tensor | None = None


class EditMethod(Component):
    """Turns a source latent and two prompts into the edited clean latent (docs/method.md section 2).

    ``requires`` lists the backbone capabilities the method needs
    (:data:`spl_sdk.components.backbone.CAPABILITIES`); ``uses_attention`` says
    whether it drives an attention controller (and so sets its layout).
    """

    kind: ClassVar[str] = "method"
    kind_label: ClassVar[str] = "edit method"
    register_hook: ClassVar[str] = "spl_register_edit_methods"

    requires: ClassVar[frozenset[str]] = frozenset()
    uses_attention: ClassVar[bool] = True
    # False for a method that edits from one instruction (the target prompt) alone.
    uses_source_prompt: ClassVar[bool] = True

    def __init__(self, options: ComponentOptions | None = None) -> None:
        self.options = self.make_options(options)

    def check(self, backbone: Backbone) -> None:
        """Refuse, before any work, a backbone that lacks a capability this method needs."""
        hint = ""
        if backbone.default_method and backbone.default_method != self.name:
            hint = f"use --method {backbone.default_method} or another --backbone"
        backbone.require(f"edit method '{self.name}'", self.requires, hint)
        if self.uses_source_prompt and "image-condition" in backbone.capabilities:
            raise IncompatibleError(
                f"edit method '{self.name}' edits from a source and a target prompt, but backbone "
                f"'{backbone.name}' is an instruction-edit model conditioned on the photo; use "
                f"--method {backbone.default_method} and give the instruction with -t.")

    def sampling(self, backbone: Backbone) -> Sampling:
        """The steps and guidance this method uses on ``backbone`` where the edit leaves them None."""
        return DEFAULT_SAMPLING

    @abstractmethod
    def edit(self, request: EditRequest) -> EditOutput:
        """Run the edit; call ``request.on_step`` once per step and ``request.inject`` where due."""

    @staticmethod
    @contextlib.contextmanager
    def controlling(controller: AttentionController | None,
                    layout: BatchLayout) -> Iterator[AttentionController | None]:
        """Give ``controller`` the method's batch layout and install it; originals restored on exit."""
        if controller is None:
            yield None
            return
        controller.layout = layout
        with controller.installed():
            yield controller
