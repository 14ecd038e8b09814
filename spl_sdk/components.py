"""Base classes for the six component kinds that plug-ins register (see hookspecs)."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from PIL import Image

    from spl_sdk.config import EditConfig
    from spl_sdk.harmonize import Harmonization


class Component(ABC):  # noqa: B024 - abstract through its subclasses
    """Common part of every component: a registry name and a one-line summary."""

    name: ClassVar[str] = ""

    @classmethod
    def summary(cls) -> str:
        """First line of the class docstring, shown by ``spl plugins`` and the app."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


# --------------------------------------------------------------------------- losses
class LossTerm(Component):
    """A pixel-space loss between a source and an edited image (DESIGN.md section 3).

    Images are (B, 3, H, W) in [-1, 1]; subclasses implement :meth:`value` on
    images already mapped to [0, 1] and masked. Override :meth:`value_and_grad`
    when a closed-form gradient is cheaper than autograd.
    """

    default_weight: ClassVar[float] = 1000.0

    def __init__(self, weight: float | None = None, mask: torch.Tensor | None = None) -> None:
        self.weight = self.default_weight if weight is None else float(weight)
        self.mask = mask

    def prepare(self, source: torch.Tensor, edited: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map both images to [0, 1] and multiply them by the mask (resized to fit) if set."""
        s, e = (source + 1) / 2, (edited + 1) / 2
        if self.mask is not None:
            m = self.mask_like(source)
            s, e = s * m, e * m
        return s, e

    def mask_like(self, image: torch.Tensor) -> torch.Tensor:
        """The mask as (1|B, 1, H, W) at the image's size and dtype."""
        m = self.mask.to(image.device, image.dtype)
        while m.dim() < 4:
            m = m.unsqueeze(0)
        if m.shape[-2:] != image.shape[-2:]:
            m = F.interpolate(m, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return m

    @abstractmethod
    def value(self, source01: torch.Tensor, edited01: torch.Tensor) -> torch.Tensor:
        """Unweighted scalar loss of prepared (mapped, masked) images; differentiable in edited01."""

    def __call__(self, source: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
        """``weight * value`` for images in [-1, 1]."""
        return self.weight * self.value(*self.prepare(source, edited))

    def value_and_grad(self, source: torch.Tensor, edited: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted loss and its gradient with respect to ``edited`` (autograd by default)."""
        with torch.enable_grad():
            e = edited.detach().requires_grad_(True)
            loss = self(source.detach(), e)
            (grad,) = torch.autograd.grad(loss, e)
        return loss.detach(), grad


# --------------------------------------------------------------------------- backbones
class Backbone(Component):
    """A latent diffusion model family behind one interface the sampler uses.

    Attributes set by :meth:`load`: ``tokenizer`` (CLIP-style, ``model_max_length``),
    ``scheduler`` (diffusers, with ``alphas_cumprod`` and ``set_timesteps``),
    ``unet`` (a diffusers model with ``attn_processors``/``set_attn_processor``),
    ``device``, ``dtype`` and ``vae_scale_factor`` (pixels per latent cell).
    """

    default_model: ClassVar[str | None] = None
    tokenizer: Any
    scheduler: Any
    unet: Any
    device: torch.device
    dtype: torch.dtype
    vae_scale_factor: int = 8

    @classmethod
    @abstractmethod
    def load(cls, model: str | None = None, *, device: str = "auto", dtype: str = "auto",
             cpu_offload: bool = False) -> Backbone:
        """Build the backbone from a Hub id or local folder (``model``), or the class default."""

    @abstractmethod
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Text embeddings (B, tokens, dim) for the prompts, padded to the model length."""

    @abstractmethod
    def predict_noise(self, latents: torch.Tensor, timestep: torch.Tensor | int,
                      embeddings: torch.Tensor) -> torch.Tensor:
        """The UNet's noise prediction for a batch of latents and embeddings."""

    @abstractmethod
    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """VAE latent (times the scaling factor) of images in [-1, 1]; deterministic (mean)."""

    @abstractmethod
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from scaled latents."""

    def tokenize(self, prompt: str) -> list[int]:
        """Token ids of one prompt with start/end tokens, unpadded."""
        return list(self.tokenizer(prompt).input_ids)


# --------------------------------------------------------------------------- attention
@dataclass
class AttentionMaps:
    """Cross-attention maps summed over steps, layers and heads, per branch.

    ``source`` and ``target`` are (res, res, tokens) averages at one spatial
    resolution; ``res`` is that resolution.
    """

    source: torch.Tensor
    target: torch.Tensor
    res: int


class AttentionController(Component):
    """Replaces UNet attention processors during an edit (DESIGN.md section 4).

    The batch the UNet sees is always ``[s_uncond, t_uncond, m_uncond, s_cond,
    t_cond, m_cond]``. The sampler calls :meth:`begin_step` before each UNet
    call and wraps the whole loop in :meth:`installed`.
    """

    def __init__(self, *, backbone: Backbone, source_prompt: str, target_prompt: str,
                 num_steps: int, config: EditConfig) -> None:
        self.backbone = backbone
        self.source_prompt = source_prompt
        self.target_prompt = target_prompt
        self.num_steps = num_steps
        self.config = config
        self.step = 0

    def begin_step(self, step: int) -> None:
        """Called by the sampler with the 0-based step index before the UNet call."""
        self.step = step

    @abstractmethod
    def processors(self, current: dict[str, Any]) -> dict[str, Any]:
        """New attention processors keyed by layer path, given the current ones."""

    @contextlib.contextmanager
    def installed(self) -> Iterator[AttentionController]:
        """Install this controller's processors on the UNet; restore the originals on exit."""
        unet = self.backbone.unet
        original = dict(unet.attn_processors)
        unet.set_attn_processor(self.processors(original))
        try:
            yield self
        finally:
            unet.set_attn_processor(original)

    def attention_maps(self, res: int = 16) -> AttentionMaps | None:
        """Stored cross-attention maps at ``res`` x ``res``, or None when none were stored."""
        return None

    def blend(self, x_t: torch.Tensor, x_s: torch.Tensor) -> torch.Tensor:
        """Local blend hook: may mix the target latent with the source's outside blend words."""
        return x_t


# --------------------------------------------------------------------------- masks
@dataclass
class MaskContext:
    """What a mask extractor may use; fields it does not need may be None."""

    source_image: torch.Tensor  # (1, 3, H, W) in [-1, 1], full size
    source_prompt: str = ""
    target_prompt: str = ""
    first_result: torch.Tensor | None = None  # first-pass edit, same size as source
    attention: AttentionMaps | None = None
    tokenizer: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class MaskExtractor(Component):
    """Produces a soft mask (1, 1, H, W) in [0, 1] at the source image's size."""

    needs_first_pass: ClassVar[bool] = False

    def __init__(self, config: EditConfig) -> None:
        self.config = config

    def check(self, context: MaskContext) -> None:
        """Raise a user-facing error before any diffusion runs if the inputs cannot work."""

    @abstractmethod
    def extract(self, context: MaskContext) -> torch.Tensor:
        """The mask for this edit; 1 marks the area where masked losses apply."""


# --------------------------------------------------------------------------- post-processing
class PostProcessor(Component):
    """Runs once on the decoded result at the source's full resolution."""

    def __init__(self, config: EditConfig) -> None:
        self.config = config

    @abstractmethod
    def process(self, source: torch.Tensor, edited: torch.Tensor, terms: list[LossTerm],
                progress: Any = None) -> torch.Tensor:
        """Return the improved edit (1, 3, H, W) in [-1, 1] given the original source."""


# --------------------------------------------------------------------------- harmonizers
class Harmonizer(Component):
    """Writes source/target prompts for a composite image and its foreground mask."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def describe(self, composite: Image.Image, mask: Image.Image,
                 object_word: str | None = None) -> Harmonization:
        """Describe the foreground object and pick style words for both regions."""


KIND_BASES: dict[str, type[Component]] = {
    "backbone": Backbone,
    "attention": AttentionController,
    "loss": LossTerm,
    "mask": MaskExtractor,
    "postprocess": PostProcessor,
    "harmonizer": Harmonizer,
}
