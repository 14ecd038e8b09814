"""Base class of backbones: one model family behind the interface edit methods use."""

from __future__ import annotations

import inspect
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from spl_sdk.components.base import Component, ComponentOptions
from spl_sdk.errors import IncompatibleError
from spl_sdk.lazy import torch

# The capability vocabulary (docs/plugins.md, "Backbones"); a method or controller lists what it needs.
CAPABILITIES = {
    "epsilon": "predict() returns noise (epsilon prediction)",
    "flow": "predict() returns a velocity; z_t = (1 - t) x0 + t n",
    "alphas-cumprod": "scheduler.alphas_cumprod indexed by the timesteps of timesteps()",
    "lcm-schedule": "timesteps() gives an LCM schedule (keyword original_steps)",
    "attention-processors": "denoiser.attn_processors / denoiser.set_attn_processor",
    "unet-cross-attention": "SD-style attn2 cross-attention layers (Prompt-to-Prompt control, maps)",
    "embedded-guidance": "guidance is an input of predict() (no classifier-free guidance batch)",
    "image-condition": ("an instruction-edit model conditioned on the photo: encode_instruction(prompts, "
                        "image, latent) gives the Conditioning predict() reads"),
}


@dataclass
class Conditioning:
    """Everything the denoiser is conditioned on, batch-first: text embeddings plus family extras.

    ``extras`` holds e.g. ``"pooled"`` (SDXL/SD3/FLUX pooled text embedding) or
    ``"time_ids"`` (SDXL); every tensor has the batch on its first axis.
    """

    embeddings: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        """The batch size."""
        return int(self.embeddings.shape[0])

    def rows(self, indices: Sequence[int] | slice) -> Conditioning:
        """The conditioning of some rows, in the given order (the same rows of every tensor)."""
        pick = indices if isinstance(indices, slice) else list(indices)
        return Conditioning(self.embeddings[pick], {k: v[pick] for k, v in self.extras.items()})

    @classmethod
    def cat(cls, parts: Sequence[Conditioning]) -> Conditioning:
        """Stack several conditionings along the batch (all must carry the same extras)."""
        keys = set(parts[0].extras)
        if any(set(p.extras) != keys for p in parts):
            raise ValueError("Conditioning.cat needs parts with the same extras")
        return cls(torch.cat([p.embeddings for p in parts]),
                   {k: torch.cat([p.extras[k] for p in parts]) for k in sorted(keys)})


class Backbone(Component):
    """A latent diffusion model family behind one interface that edit methods use.

    What an edit method may ask of a backbone (and nothing else):

    - class attributes: ``family`` ("sd15", "sdxl", "sd3", "flux"), ``prediction_type``
      ("epsilon" or "flow"), ``capabilities`` (a frozenset from :data:`CAPABILITIES`),
      ``default_working_size`` (long side in pixels used when the user sets none) and
      ``default_method`` (the edit method used when the user names none);
    - :meth:`encode_prompts` -> :class:`Conditioning`, one row per prompt;
    - :meth:`predict`: one denoiser call for a batch of latents at one timestep, float32
      noise (``epsilon``) or velocity (``flow``);
    - :meth:`timesteps`: the family's schedule for ``steps`` steps; family-specific knobs go
      through keywords (``original_steps`` for an LCM schedule), unknown ones are ignored;
    - :meth:`encode_image` / :meth:`decode_latents`: float32 latents (B, C, h, w), scaled and
      shifted, deterministic; optionally ``encode_image(image, generator=g)`` samples the VAE
      posterior with ``g`` instead (the paper profile needs it; see :meth:`samples_posterior`);
    - attributes set by :meth:`load`: ``tokenizer`` (CLIP-style with ``model_max_length``; the
      first one when there are several), ``scheduler`` (with ``alphas_cumprod`` when the
      backbone has the "alphas-cumprod" capability), ``denoiser`` (the UNet or transformer;
      with ``attn_processors``/``set_attn_processor`` under "attention-processors"),
      ``device``, ``dtype`` and ``vae_scale_factor`` (pixels per latent cell).

    A method or attention controller declares the capabilities it needs in ``requires``;
    :meth:`require` refuses a pair that does not fit before any work is done.
    """

    kind: ClassVar[str] = "backbone"
    kind_label: ClassVar[str] = "backbone"
    register_hook: ClassVar[str] = "spl_register_backbones"

    default_model: ClassVar[str | None] = None
    family: ClassVar[str] = ""
    prediction_type: ClassVar[str] = "epsilon"
    capabilities: ClassVar[frozenset[str]] = frozenset()
    default_working_size: ClassVar[int] = 512
    default_method: ClassVar[str] = "infedit"
    extra: ClassVar[str | None] = None  # the spl-sdk extra its loading needs (pip install 'spl-sdk[extra]')
    # Long side of the cross-attention maps that masks and the local blend read: SD 1.x's
    # 16 x 16 at 512 px (docs/method.md section 5); families with other layouts set their own.
    attention_res: ClassVar[int] = 16
    tokenizer: Any
    scheduler: Any
    denoiser: Any
    device: torch.device
    dtype: torch.dtype
    vae_scale_factor: int = 8

    @classmethod
    @abstractmethod
    def load(cls, model: str | None = None, *, device: str = "auto", dtype: str = "auto",
             cpu_offload: bool = False, options: ComponentOptions | None = None) -> Backbone:
        """Build the backbone from a Hub id or local folder (``model``), or the class default.

        ``options`` is this class's validated ``Options`` (None: the defaults);
        the editor also stores it as ``backbone.options`` after loading.
        """

    @abstractmethod
    def encode_prompts(self, prompts: list[str]) -> Conditioning:
        """The conditioning of each prompt (embeddings padded to the model length, plus extras)."""

    @abstractmethod
    def predict(self, latents: torch.Tensor, timestep: Any, cond: Conditioning, *,
                guidance: float | None = None) -> torch.Tensor:
        """One denoiser call for the batch: float32 noise (epsilon) or velocity (flow).

        ``guidance`` is only read by backbones with "embedded-guidance".
        """

    @abstractmethod
    def timesteps(self, steps: int, *, latent_shape: tuple[int, ...], **kw: Any) -> list:
        """The family's schedule of ``steps`` timesteps, first (noisiest) first."""

    @abstractmethod
    def encode_image(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """VAE latent (scaled and shifted, float32) of images in [-1, 1]; deterministic (mean).

        Optional: a backbone whose VAE has a posterior may accept ``generator`` and then return
        a sample of the posterior drawn with it (one draw of the latent's shape, in the model's
        dtype on the generator's device), as diffusers' ``latent_dist.sample(generator)``.
        A backbone without it keeps the one-argument form; ``--profile paper`` then refuses it.
        """

    def samples_posterior(self) -> bool:
        """True when :meth:`encode_image` accepts ``generator`` (posterior sampling)."""
        return "generator" in inspect.signature(self.encode_image).parameters

    @abstractmethod
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (float32) from scaled latents."""

    def tokenize(self, prompt: str) -> list[int]:
        """Token ids of one prompt with start/end tokens, unpadded."""
        return list(self.tokenizer(prompt).input_ids)

    def long_prompt_tokens(self, prompt: str) -> tuple[int, int] | None:
        """(tokens, limit) of ``prompt`` in a longer second text encoder (T5), or None without one."""
        return None

    def require(self, who: str, requires: frozenset[str] | set[str], hint: str = "") -> None:
        """Raise IncompatibleError naming ``who`` and this backbone when a needed capability is missing."""
        missing = sorted(set(requires) - set(self.capabilities))
        if not missing:
            return
        has = ", ".join(sorted(self.capabilities)) or "none"
        raise IncompatibleError(
            f"{who} cannot run on backbone '{self.name or type(self).__name__}': it needs "
            f"{', '.join(missing)}, which this backbone does not provide (it has: {has})"
            f"{'; ' + hint if hint else ''}.")
