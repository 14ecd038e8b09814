"""SPL inside a diffusers pipeline: a ``callback_on_step_end`` object for flow-matching pipelines.

    callback = SPLCallback(pipe, photo, height=1024, width=1024)
    pipe(image=photo, prompt="make it night", height=1024, width=1024,
         callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents"])

After step i the pipeline hands over z_{i+1}; the callback kept z_i from the step
before, so the velocity is v = (z_{i+1} - z_i) / (t_{i+1} - t_i) with the path times
of ``pipe.scheduler.sigmas``. From ``opt_start`` on it refines the clean estimate
x0 = z_{i+1} - t_{i+1} v and hands back z_{i+1} + (x0' - x0): the same code
(:mod:`spl_sdk.injection`) as the ``instruct`` method, so both give the same latents.
The pipeline class picks the backbone plug-in that knows its latent layout (packing, VAE).
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from spl_sdk.components.backbone import Backbone
from spl_sdk.config import PROFILE_DEFAULTS, RefineConfig
from spl_sdk.errors import ConfigError
from spl_sdk.geometry import resize
from spl_sdk.imageio import mask_image, mask_to_tensor, pil_to_tensor
from spl_sdk.injection import continue_from_refined, injection_steps, make_injector
from spl_sdk.lazy import no_grad, torch
from spl_sdk.plugins import Plugins, get_plugins
from spl_sdk.terms import build_terms, check_terms


def backbone_for_pipeline(plugins: Plugins, pipe: Any) -> Backbone:
    """A backbone plug-in's view of ``pipe``'s own components, chosen by the pipeline's class name."""
    kind = type(pipe).__name__
    for name in plugins.names("backbone"):
        cls = plugins.backbone(name)
        if kind in getattr(cls, "pipeline_classes", ()) and hasattr(cls, "from_pipeline"):
            return cls.from_pipeline(pipe)
    raise ConfigError(f"no installed backbone plug-in knows the latents of {kind}; SPLCallback works "
                      f"with the flow pipelines of FLUX.1, FLUX.1 Kontext and SD3 (see docs/instruct.md).")


class SPLCallback:
    """``callback_on_step_end`` adding SPL (and any loss of ``spl refine``) to a diffusers flow pipeline.

    ``image`` is the photo (PIL or a (1, 3, H, W) tensor in [-1, 1]); ``height``/``width`` the
    pipeline's output size (default: the photo's); ``mask`` restricts 'masked' losses; loss and
    optimizer settings are :class:`~spl_sdk.config.RefineConfig` fields (``config`` or keywords).
    """

    tensor_inputs = ("latents",)

    def __init__(self, pipe: Any, image: Image.Image | torch.Tensor, *, height: int | None = None,
                 width: int | None = None, opt_start: float = 0.8, mask: Any = None,
                 config: RefineConfig | None = None, plugins: Plugins | None = None,
                 backbone: Backbone | None = None, **settings: Any) -> None:
        plugins = plugins or get_plugins()
        self.backbone = backbone or backbone_for_pipeline(plugins, pipe)
        self.config = config or RefineConfig(**settings)
        source = pil_to_tensor(image.convert("RGB")) if isinstance(image, Image.Image) else image.float()
        self.height = int(height or source.shape[-2])
        self.width = int(width or source.shape[-1])
        self.source = resize(source.cpu(), (self.height, self.width)).to(self.backbone.device)
        self.opt_start = float(opt_start)
        self.terms = build_terms(plugins, self.config, self._mask(mask))
        with torch.no_grad():
            round_trip = self.backbone.decode_latents(self.backbone.encode_image(self.source))
        # an EditConfig leaves the solver to its profile (None until an edit's plan fills it)
        solver = self.config.solver or PROFILE_DEFAULTS[getattr(self.config, "profile", "default")]["solver"]
        self.inject = make_injector(self.backbone, self.terms, round_trip, iterations=self.config.iterations,
                                    solver=solver,
                                    check=lambda d: check_terms(plugins, self.terms, round_trip.float(), d))
        self.previous: torch.Tensor | None = None
        self.steps_injected: list[int] = []

    def _mask(self, mask: Any) -> torch.Tensor | None:
        if mask is None:
            return None
        m = mask_to_tensor(mask_image(mask)) if isinstance(mask, Image.Image) else mask.float()
        while m.dim() < 4:
            m = m.unsqueeze(0)
        return resize(m, (self.height, self.width)).clamp(0, 1).to(self.backbone.device)

    def _unpacked(self, latents: torch.Tensor) -> torch.Tensor:
        convert = getattr(self.backbone, "from_pipeline_latents", None)
        return (convert(latents, self.height, self.width) if convert else latents).float()

    def _packed(self, latents: torch.Tensor) -> torch.Tensor:
        convert = getattr(self.backbone, "to_pipeline_latents", None)
        return convert(latents) if convert else latents

    @no_grad
    def __call__(self, pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Refine the clean estimate after ``step`` when it is due; always hand the latents back."""
        latents = kwargs["latents"]
        # steps this run takes (img2img runs the tail of the schedule), and where the scheduler is
        steps = int(getattr(pipe, "num_timesteps", None) or len(pipe.scheduler.timesteps))
        if step == 0:
            self.previous, self.steps_injected = None, []  # a new run of the pipeline
        if step in injection_steps(steps, self.opt_start):
            if self.previous is None:
                raise ConfigError(f"SPLCallback cannot inject at step {step}: a diffusers callback does not "
                                  f"see the latents before the first step; raise opt_start above 0.")
            sigmas, index = pipe.scheduler.sigmas, pipe.scheduler.step_index  # index: after this step
            t, t_next = float(sigmas[index - 1]), float(sigmas[index])
            z_prev, z = self._unpacked(self.previous), self._unpacked(latents)
            v = (z - z_prev) / (t_next - t)  # the Euler step z = z_prev + (t_next - t) v, solved for v
            refined, _ = continue_from_refined(z, v, t_next, self.inject)
            latents = self._packed(refined).to(latents.dtype)
            self.steps_injected.append(step)
        self.previous = latents
        return {"latents": latents}
