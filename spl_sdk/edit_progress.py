"""Progress of one edit: every denoising step of every pass, then each post-processing unit."""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

from spl_sdk.components import Backbone
from spl_sdk.errors import Canceled
from spl_sdk.imageio import tensor_to_pil
from spl_sdk.lazy import torch

ProgressCallback = Callable[[int, int, "Image.Image | None"], "bool | None"]
# (phase, done, total) per phase: "mask pass", "steps", "injection", "post-processing"
PhaseCallback = Callable[[str, int, int], None]


class EditProgress:
    """Adapts the method's per-step hook and the post-processor's callback to the user's callbacks.

    ``callback`` sees one count over the work units: every denoising step of every pass
    (a pass may report another step count than configured: the total follows it), then
    each unit the post-processor reports. ``on_phase`` sees the same units per phase:
    "mask pass" (a first pass for the mask), "steps" and "injection" (steps with
    ``i / n >= opt_start`` when losses are injected), "post-processing".
    """

    def __init__(self, callback: ProgressCallback | None, on_phase: PhaseCallback | None, steps: int,
                 passes: int, post_units: int, backbone: Backbone, previews: bool) -> None:
        self.callback, self.on_phase, self.backbone, self.previews = callback, on_phase, backbone, previews
        self.planned = steps  # steps per pass as configured
        self.steps = steps * passes  # all passes' steps, corrected as passes report theirs
        self.total = self.steps + post_units
        self.done = 0
        self.opt_start = 1.0  # set by the editor once it knows whether losses are injected
        self.pass_name: str | None = None  # "mask pass" during a first pass
        self._pass_steps: int | None = None
        self._phase_done: dict[str, int] = {}
        self._post_before = 0  # units of the post-processors that already ran
        self._post_planned = post_units
        self._post_units = 0  # units the running post-processor announced
        self._post_phase = "post-processing"

    def begin_pass(self) -> None:
        """Called before each run of the method."""
        self._pass_steps = None
        self._phase_done = {}

    @property
    def reported(self) -> bool:
        """Whether the method has reported a step of the current pass."""
        return self._pass_steps is not None

    def __call__(self, step: int, steps: int, x0_hat: torch.Tensor) -> None:
        if self._pass_steps is None:  # the first step of a pass says how many it has
            self._pass_steps = steps
            self.steps += steps - self.planned
            self.total += steps - self.planned
        self.done += 1
        if self.on_phase is not None:
            self._phase(step, steps)
        if self.callback is None:
            return
        preview = tensor_to_pil(self.backbone.decode_latents(x0_hat).float()) if self.previews else None
        self._report(preview)

    def _phase(self, step: int, steps: int) -> None:
        """Report ``step`` (0-based) of a pass of ``steps`` to ``on_phase`` under its phase."""
        injected = sum(1 for i in range(steps) if i / steps >= self.opt_start and self.opt_start < 1.0)
        if self.pass_name is not None:
            phase, total = self.pass_name, steps
        elif injected and step / steps >= self.opt_start:
            phase, total = "injection", injected
        else:
            phase, total = "steps", steps - injected
        self._phase_done[phase] = self._phase_done.get(phase, 0) + 1
        self.on_phase(phase, self._phase_done[phase], total)  # type: ignore[misc]

    def begin_post(self, name: str | None, units: int) -> None:
        """Called before each post-processor (``name`` shown in the phase when several run)."""
        self._post_before += self._post_units
        self._post_units = units
        self._post_phase = "post-processing" if name is None else f"post-processing {name}"

    def post(self, done: int, total: int) -> None:
        """The running post-processor's progress: ``done`` of its own ``total`` units."""
        done = min(max(done, 0), total)
        later = self._post_planned - self._post_before - self._post_units  # the ones still to run
        self.total = self.steps + self._post_before + max(total, 0) + max(later, 0)
        self.done = self.steps + self._post_before + done
        if self.on_phase is not None:
            self.on_phase(self._post_phase, done, total)
        if self.callback is not None:
            self._report(None)

    def _report(self, preview: Image.Image | None) -> None:
        if self.callback(self.done, self.total, preview) is False:
            raise Canceled("the edit was canceled; nothing was written.")
