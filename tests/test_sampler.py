"""The infedit method's three-branch sampler against docs/method.md section 2, with a stand-in UNet."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import LCMScheduler

from spl_methods.infedit import (
    Guidance,
    guided,
    injection_steps,
    sample,
    virtual_inversion_step,
)
from spl_sdk.components import Conditioning


class FakeBackbone:
    """Noise predictions that depend on the latent and on each prompt's embedding."""

    def __init__(self) -> None:
        self.scheduler = LCMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
        self.calls: list[torch.Tensor] = []

    def timesteps(self, steps: int, *, latent_shape: tuple[int, ...], original_steps: int = 50) -> list[int]:
        self.scheduler.set_timesteps(num_inference_steps=steps, original_inference_steps=original_steps)
        return [int(t) for t in self.scheduler.timesteps]

    def predict(self, latents: torch.Tensor, t: int, cond: Conditioning, *, guidance=None) -> torch.Tensor:
        self.calls.append(latents.clone())
        embeddings = cond.embeddings
        return torch.tanh(latents) * embeddings.mean(dim=(1, 2)).view(-1, 1, 1, 1) + embeddings.mean(dim=(1, 2)).view(-1, 1, 1, 1) + 1e-3 * t


def embeddings_for(src: float, tgt: float, neg: float = 0.0) -> torch.Tensor:
    values = [neg, neg, neg, src, tgt, src]
    return torch.stack([torch.full((4, 8), v) for v in values])


def test_injection_happens_at_steps_12_13_14_of_15() -> None:
    assert injection_steps(15, 0.8) == [12, 13, 14]
    assert injection_steps(15, 1.0) == []
    assert injection_steps(4, 0.0) == [0, 1, 2, 3]


def test_lcm_schedule_uses_original_inference_steps(tiny_backbone) -> None:
    steps = tiny_backbone.timesteps(15, latent_shape=(1, 4, 32, 32), original_steps=50)
    assert len(steps) == 15 and steps[0] == 999 and steps == sorted(steps, reverse=True)
    coarse = tiny_backbone.timesteps(4, latent_shape=(1, 4, 32, 32), original_steps=4)
    assert coarse == [999, 749, 499, 249]  # the LCM grid of 4 original steps
    assert tiny_backbone.timesteps(15, latent_shape=(1, 4, 32, 32)) == steps  # default: 50


def test_guidance_splits_the_batch_of_six() -> None:
    uncond = torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1, 1)
    cond = torch.tensor([2.0, 4.0, 5.0]).view(3, 1, 1, 1)
    e_s, e_t, e_m = guided(torch.cat([uncond, cond]), Guidance(source=1.0, target=2.0))
    assert e_s.item() == 2.0  # scale 1 -> the conditional prediction
    assert e_t.item() == 2.0 + 2.0 * (4.0 - 2.0)
    assert e_m.item() == 5.0


def test_update_matches_the_equations() -> None:
    g = torch.Generator().manual_seed(1)
    x_s, x_b, z0, e_s, e_b, n = (torch.randn(1, 4, 3, 3, generator=g) for _ in range(6))
    a, a_prev = 0.3, 0.6
    nxt, x0 = virtual_inversion_step(x_s, x_b, z0, e_s, e_b, a, a_prev, n, eta=1.0)
    expected_x0 = z0 + ((x_b - x_s) - math.sqrt(1 - a) * (e_b - e_s)) / math.sqrt(a)
    torch.testing.assert_close(x0, expected_x0)
    # eta = 1: no deterministic direction term, only fresh noise of variance 1 - A'
    torch.testing.assert_close(nxt, math.sqrt(a_prev) * expected_x0 + math.sqrt(1 - a_prev) * n)


def test_equal_prompts_and_guidance_keep_x0_equal_to_the_source_latent() -> None:
    z0 = torch.randn(1, 4, 6, 5, generator=torch.Generator().manual_seed(0))
    seen: list[torch.Tensor] = []
    out = sample(FakeBackbone(), None, z0, embeddings_for(0.7, 0.7), steps=6, guidance=Guidance(1.5, 1.5), seed=3, on_step=lambda i, n, x0: seen.append(x0))
    assert len(seen) == 6
    for x0 in seen:
        torch.testing.assert_close(x0, z0, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.latent, z0, atol=1e-5, rtol=0)


def test_a_different_target_prompt_moves_the_estimate_and_is_seeded() -> None:
    z0 = torch.zeros(1, 4, 4, 4)
    runs = [sample(FakeBackbone(), None, z0, embeddings_for(0.1, 0.9), steps=4, original_steps=50,
                   guidance=Guidance(), seed=seed).latent for seed in (5, 5, 6)]
    assert not torch.allclose(runs[0], z0)
    torch.testing.assert_close(runs[0], runs[1])
    assert not torch.allclose(runs[0], runs[2])


def test_all_branches_start_from_the_same_noise_in_one_batched_call() -> None:
    backbone = FakeBackbone()
    sample(backbone, None, torch.zeros(1, 4, 4, 4), embeddings_for(0.1, 0.9), steps=3,
           original_steps=50, guidance=Guidance(), seed=0)
    assert len(backbone.calls) == 3  # one UNet call per step
    first = backbone.calls[0]
    assert first.shape[0] == 6
    for i in range(1, 6):
        torch.testing.assert_close(first[i], first[0])


def test_injection_replaces_the_target_estimate_at_scheduled_steps() -> None:
    z0 = torch.zeros(1, 4, 4, 4)
    calls: list[int] = []

    def inject(x0: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return torch.full_like(x0, 0.25)

    out = sample(FakeBackbone(), None, z0, embeddings_for(0.1, 0.9), steps=5, guidance=Guidance(), seed=0, opt_start=0.6, inject=inject)
    assert out.steps_injected == [3, 4] and len(calls) == 2
    torch.testing.assert_close(out.latent, torch.full_like(z0, 0.25))


@pytest.mark.parametrize("eta", [1.0, 0.0])
def test_last_step_reuses_its_own_alpha(eta: float) -> None:
    z0 = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(2))
    out = sample(FakeBackbone(), None, z0, embeddings_for(0.2, 0.2), steps=1, guidance=Guidance(1, 1), seed=0, eta=eta)
    torch.testing.assert_close(out.latent, z0, atol=1e-5, rtol=0)
