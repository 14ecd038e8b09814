"""The FlowEdit update as a pure function of a velocity field (no model): exact cases and bookkeeping."""

from __future__ import annotations

import pytest
import torch

from spl_methods.flowedit_loop import coupled_latents, edit_steps, flowedit, injection_steps

STEPS = 10
SIGMAS = [1 - i / STEPS for i in range(STEPS)] + [0.0]
TIMESTEPS = [1000 * s for s in SIGMAS[:-1]]


def point_mass(x: torch.Tensor):
    """The exact velocity of a data distribution concentrated at ``x``: v = (z_t - x) / t."""
    return lambda z, t: (z - x) / (t / 1000)


def pair(src, tgt, calls=None):
    def velocity(z_src_t, z_tar_t, timestep):
        if calls is not None:
            calls.append(timestep)
        return src(z_src_t, timestep), tgt(z_tar_t, timestep)
    return velocity


def test_point_masses_move_the_source_by_the_difference_of_the_targets():
    z_src, x_src, x_tar = torch.randn(3, 1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    out = flowedit(z_src, TIMESTEPS, SIGMAS, pair(point_mass(x_src), point_mass(x_tar)), n_max=STEPS)
    torch.testing.assert_close(out.latent, z_src + (x_tar - x_src), rtol=1e-5, atol=1e-5)


def test_equal_velocities_leave_the_source_latent_exactly_unchanged():
    z_src, x = torch.randn(2, 1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    seen = []
    out = flowedit(z_src, TIMESTEPS, SIGMAS, pair(point_mass(x), point_mass(x)), n_max=7, n_avg=2,
                   on_step=lambda k, n, x0: seen.append((k, n)))
    assert torch.equal(out.latent, z_src)
    assert seen == [(i, STEPS) for i in range(STEPS)]  # every step of the schedule is reported


def test_coupled_latents_share_the_noise_and_differ_by_the_edit():
    z_src, z_fe, noise = torch.randn(3, 2, 3, generator=torch.Generator().manual_seed(2))
    src_t, tar_t = coupled_latents(z_fe, z_src, noise, 0.3)
    torch.testing.assert_close(src_t, 0.7 * z_src + 0.3 * noise)
    torch.testing.assert_close(tar_t - src_t, z_fe - z_src)
    assert torch.equal(coupled_latents(z_src, z_src, noise, 0.3)[1], src_t)


def test_only_the_last_n_max_steps_run_each_with_n_avg_draws():
    z_src, x_src, x_tar = torch.randn(3, 1, 4, 4, 4, generator=torch.Generator().manual_seed(3))
    calls: list[float] = []
    out = flowedit(z_src, TIMESTEPS, SIGMAS, pair(point_mass(x_src), point_mass(x_tar), calls),
                   n_max=4, n_avg=3)
    assert edit_steps(STEPS, 4, 0) == [6, 7, 8, 9] and out.steps_run == 4
    assert calls == [TIMESTEPS[i] for i in (6, 7, 8, 9) for _ in range(3)]
    # starting late still lands on the edit for point masses (the flow is exact)
    torch.testing.assert_close(out.latent, z_src + (x_tar - x_src), rtol=1e-5, atol=1e-5)


def test_below_n_min_it_samples_the_target_plainly():
    z_src, x_src, x_tar = torch.randn(3, 1, 4, 4, 4, generator=torch.Generator().manual_seed(4))
    plain: list[float] = []

    def target(z, timestep):
        plain.append(timestep)
        return point_mass(x_tar)(z, timestep)

    out = flowedit(z_src, TIMESTEPS, SIGMAS, pair(point_mass(x_src), point_mass(x_tar)), target,
                   n_max=6, n_min=2)
    assert plain == TIMESTEPS[-2:]
    # plain sampling of a point mass ends exactly on it
    torch.testing.assert_close(out.latent, x_tar, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="target_velocity"):
        flowedit(z_src, TIMESTEPS, SIGMAS, pair(point_mass(x_src), point_mass(x_tar)), n_max=6, n_min=2)


def test_injection_steps_are_those_with_i_over_n_at_least_opt_start():
    assert injection_steps(50, 0.8) == list(range(40, 50))
    assert injection_steps(10, 0.2, first=6) == [6, 7, 8, 9]
    assert injection_steps(10, 1.0) == []


@pytest.mark.parametrize("n_min", [0, 1])
def test_an_injected_clean_estimate_is_put_back_into_the_state(n_min):
    z_src, x_src, x_tar, bump = torch.randn(4, 1, 4, 4, 4, generator=torch.Generator().manual_seed(5))
    velocities = pair(point_mass(x_src), point_mass(x_tar))
    before: list[torch.Tensor] = []
    base = flowedit(z_src, TIMESTEPS, SIGMAS, velocities, point_mass(x_tar), n_max=STEPS, n_min=n_min,
                    on_step=lambda k, n, x0: before.append(x0))
    estimates: list[torch.Tensor] = []
    out = flowedit(z_src, TIMESTEPS, SIGMAS, velocities, point_mass(x_tar), n_max=STEPS, n_min=n_min,
                   opt_start=0.9, inject=lambda x0: x0 + bump,
                   on_step=lambda k, n, x0: estimates.append(x0))
    assert out.steps_injected == [9]
    # at the last step (t_next = 0) the shift of the clean estimate is the shift of the result
    torch.testing.assert_close(out.latent, base.latent + bump, rtol=1e-5, atol=1e-5)
    # the callback sees the refined estimate
    torch.testing.assert_close(estimates[-1], before[-1] + bump)
    if n_min:  # plain sampling ends on its last clean estimate
        torch.testing.assert_close(out.latent, estimates[-1], rtol=1e-5, atol=1e-5)


def test_the_edit_estimate_injected_at_the_last_step_is_the_result():
    z_src, x_src, x_tar, goal = torch.randn(4, 1, 4, 4, 4, generator=torch.Generator().manual_seed(6))
    velocities = pair(point_mass(x_src), lambda z, t: point_mass(x_tar)(z, t) + 0.3)
    for estimate in ("edit", "target"):
        seen: list[torch.Tensor] = []
        out = flowedit(z_src, TIMESTEPS, SIGMAS, velocities, n_max=STEPS, opt_start=0.9,
                       inject=lambda x0: goal, on_step=lambda i, n, x0, seen=seen: seen.append(x0),
                       estimate=estimate)
        torch.testing.assert_close(seen[-1], goal)
        if estimate == "edit":
            torch.testing.assert_close(out.latent, goal, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="estimate"):
        flowedit(z_src, TIMESTEPS, SIGMAS, velocities, n_max=2, estimate="x")
