"""Guided velocity of several branches in one denoiser call (classifier-free or embedded guidance)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spl_sdk.components.backbone import Conditioning
from spl_sdk.lazy import torch

EMBEDDED = "embedded-guidance"


class GuidedVelocity:
    """v(z, t) of branches with their own prompt and guidance scale, batched into one ``predict`` call.

    Embedded guidance (FLUX.1-dev): one row per branch, the scale is a model input.
    Otherwise classifier-free guidance with empty negative prompts, as the diffusers
    pipelines: a branch with scale <= 1 uses its conditional velocity alone, and the
    unconditional rows are left out of the batch when no branch needs them.
    """

    def __init__(self, backbone: Any, prompts: Sequence[str], scales: Sequence[float]) -> None:
        self.backbone = backbone
        self.scales = [float(s) for s in scales]
        self.embedded = EMBEDDED in getattr(backbone, "capabilities", frozenset())
        self.cfg = not self.embedded and any(s > 1 for s in self.scales)
        texts = ([""] * len(prompts) if self.cfg else []) + list(prompts)
        self.cond: Conditioning = backbone.encode_prompts(texts)
        self.calls = 0

    def __call__(self, latents: Sequence[torch.Tensor], timestep: Any) -> list[torch.Tensor]:
        """Guided velocities (float32), one per branch latent, from one batched denoiser call."""
        n = len(latents)
        batch = torch.cat(list(latents) * (2 if self.cfg else 1))
        guidance = self.scales if self.embedded else None
        out = self.backbone.predict(batch, timestep, self.cond, guidance=guidance).float()
        self.calls += 1
        if not self.cfg:
            return list(out.chunk(n))
        uncond, cond = out[:n], out[n:]
        return [cond[i:i + 1] if s <= 1 else uncond[i:i + 1] + s * (cond[i:i + 1] - uncond[i:i + 1])
                for i, s in enumerate(self.scales)]
