"""The one refine recipe: align the edit, put the source's structure back, run the post-processors.

``spl refine``, the batch worker's refine rows, the studio and the Python API all
call :func:`refine`, so they run the same checks and give the same pixels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from spl_sdk.config import RefineConfig
from spl_sdk.errors import ConfigError, SplError
from spl_sdk.lazy import torch
from spl_sdk.version import __version__

if TYPE_CHECKING:
    from spl_sdk.plugins import Plugins

__all__ = ["RefineResult", "refine", "resolve_device"]

ImageLike = "Image.Image | str | Path | torch.Tensor"
# (iteration, total, loss) of the optimizer
StepCallback = Callable[[int, int, "float | None"], None]


@dataclass
class RefineResult:
    """A refined image with its configuration, the alignment applied and per-phase timings."""

    image: Image.Image
    config: RefineConfig
    alignment: dict[str, Any]
    coverage: Image.Image  # mode "L": white where the un-warped edit covers the source
    aligned: Image.Image  # the edit on the source's grid, before refinement
    loss_before: float
    loss_after: float
    timings: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"

    def metadata(self) -> dict[str, Any]:
        """What a saved result embeds: the configuration, the estimated warp, losses and timings."""
        return {"spl_sdk": __version__, "config": self.config.model_dump(mode="json"),
                "alignment": self.alignment, "loss_before": self.loss_before, "loss_after": self.loss_after,
                "timings": {k: round(v, 3) for k, v in self.timings.items()}}

    def save(self, path: str | Path, *, force: bool = False, extra: dict[str, Any] | None = None) -> Path:
        """Write the image with its metadata (PNG text chunk, EXIF otherwise), atomically."""
        from spl_sdk.imageio import save_image

        return save_image(self.image, path, metadata=self.metadata() | (extra or {}), force=force)

    def save_alignment(self, path: str | Path, *, force: bool = False) -> tuple[Path, Path]:
        """Write the aligned edit to ``path`` and its coverage mask beside it (``NAME.coverage.png``)."""
        from spl_sdk.imageio import check_output, save_image

        path = Path(path)
        mask_path = path.with_name(path.stem + ".coverage.png")
        check_output(mask_path, force)  # both refused before either is written
        meta = {"spl_sdk": __version__, "alignment": self.alignment}
        return (save_image(self.aligned, path, metadata=meta, force=force),
                save_image(self.coverage, mask_path, metadata=meta, force=force))


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` is the CUDA GPU when there is one, else the CPU; a missing device is one clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device '{device}'; use auto, cpu, cuda or cuda:N.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' was asked for but this machine has no usable CUDA GPU; "
                          f"use --device cpu or auto.")
    return dev


def _dtype(dtype: str) -> None:
    if dtype not in ("auto", "float32"):
        raise ConfigError(f"dtype '{dtype}' is not supported by refine: its solver sums squared "
                          f"differences over windows, which overflow in half precision; use float32 or auto.")


def _tensor(image: Any, what: str) -> torch.Tensor:
    """(1, 3, H, W) float32 in [-1, 1] on the CPU from a PIL image, a file path or such a tensor."""
    from spl_sdk.imageio import load_image, pil_to_tensor

    if isinstance(image, (str, Path)):
        image = load_image(image)
    if isinstance(image, Image.Image):
        return pil_to_tensor(image.convert("RGB"))
    if isinstance(image, torch.Tensor) and image.dim() == 4 and image.shape[:2] == (1, 3):
        return image.detach().float().cpu()
    raise SplError(f"cannot refine with a {what} of type {type(image).__name__}; pass a PIL image, a file "
                   f"path, or a (1, 3, H, W) tensor in [-1, 1].")


def _mask(mask: Any, cfg: RefineConfig, size: tuple[int, int]) -> torch.Tensor | None:
    """(1, 1, H, W) in [0, 1] from the ``mask`` argument or the config's mask file, at the source's size."""
    from spl_sdk.imageio import load_mask, mask_to_tensor

    mask = cfg.mask_file if mask is None else mask
    if mask is None:
        return None
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().float().reshape(1, 1, *mask.shape[-2:]).cpu()
        return torch.nn.functional.interpolate(mask, size=size, mode="bilinear") \
            if tuple(mask.shape[-2:]) != size else mask
    if isinstance(mask, (str, Path)):
        return mask_to_tensor(load_mask(mask, size=size[::-1]))
    return mask_to_tensor(mask.convert("L").resize(size[::-1], Image.Resampling.BILINEAR))


def _config(config: RefineConfig | None, align: str | None, overrides: dict[str, Any]) -> RefineConfig:
    """The run's configuration: ``config`` (or the defaults) with the keyword overrides."""
    from pydantic import ValidationError

    from spl_sdk.config import describe_validation_error

    data = (config or RefineConfig()).model_dump()
    data.update({k: v for k, v in overrides.items() if v is not None})
    if align is not None:
        data["align"] = align
    try:
        return RefineConfig(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "refine()", RefineConfig)) from None


def refine(source: Any, edited: Any, *, mask: Any = None, align: str | None = None, device: str = "auto",
           dtype: str = "auto", config: RefineConfig | None = None, plugins: Plugins | None = None,
           on_step: StepCallback | None = None, allow_large: bool = False, **overrides: Any) -> RefineResult:
    """Restore ``source``'s structure in ``edited`` (any edit of it, aligned first) at the source's size.

    ``align`` (default: the config's, 'auto') and any RefineConfig field as a keyword
    override ``config``. Everything, alignment included, runs on ``device``.
    """
    from spl_sdk.align import align as register
    from spl_sdk.editor import call_post_processor
    from spl_sdk.footprint import check_fits, out_of_memory_as_error
    from spl_sdk.imageio import tensor_to_pil
    from spl_sdk.optimizer import optimize_image
    from spl_sdk.options import check_options, construct, with_resolved_options
    from spl_sdk.plugins import get_plugins
    from spl_sdk.terms import build_terms, check_terms

    cfg = _config(config, align, overrides)
    if cfg.structure_loss is None and cfg.color_loss is None:
        raise ConfigError("both the structure and the color loss are off; turn at least one on.")
    masked = any(loss is not None and area == "masked" for loss, area in (
        (cfg.structure_loss, cfg.structure_area), (cfg.color_loss, cfg.color_area)))
    if (mask is not None or cfg.mask_file is not None) and not masked:
        # a mask alone restricts every active loss to it, as ``spl refine --mask`` does
        cfg = cfg.model_copy(update={"structure_area": "masked", "color_area": "masked"})
    plugins = plugins or get_plugins()
    check_options(plugins, cfg.options)  # every option, before the images are read
    cfg = with_resolved_options(plugins, cfg)  # the metadata records every option value used
    dev = resolve_device(device)
    _dtype(dtype)
    src = _tensor(source, "source")
    size = tuple(src.shape[-2:])
    check_fits(size[1], size[0], "refine it at full size", allow_large)  # before the slow part
    start = _tensor(edited, "edited image")
    mask_t = _mask(mask, cfg, size)
    terms = build_terms(plugins, cfg, None if mask_t is None else mask_t.to(dev))
    posts = [construct(plugins, "post-processor", name, cfg.options, iterations=cfg.iterations, solver=cfg.solver)
             for name in cfg.post_processors]
    timings: dict[str, float] = {}
    with out_of_memory_as_error(size[1], size[0], "refine it"):
        began = time.perf_counter()
        src = src.to(dev)
        aligned = register(src, start.to(dev), cfg.align)
        timings["align"] = time.perf_counter() - began
        check_terms(plugins, terms, src, aligned.image)
        result = optimize_image(src, aligned.image, terms, iterations=cfg.iterations, solver=cfg.solver,
                                progress=on_step)
        timings["optimization"] = result.seconds
        image = result.image
        began = time.perf_counter()
        for post in posts:  # in the configured order, as after an edit
            image = call_post_processor(post, src, image, terms, lambda *_: None, plugins)
        if posts:
            timings["post_process"] = time.perf_counter() - began
    coverage = tensor_to_pil(aligned.coverage.expand(-1, 3, -1, -1) * 2 - 1).convert("L")
    return RefineResult(image=tensor_to_pil(image), config=cfg, alignment=aligned.info, coverage=coverage,
                        aligned=tensor_to_pil(aligned.image), loss_before=result.loss_before,
                        loss_after=result.loss_after, timings=timings, device=str(dev))
