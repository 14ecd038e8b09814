"""``spl refine``: put the source's edge structure back into any edited version, at full size."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import click

from spl_sdk.cli.help import command, epilog, sections
from spl_sdk.cli.options import alias, config_options, handle_errors, option_flag, quiet_flag
from spl_sdk.config import RefineConfig
from spl_sdk.footprint import ALLOW_LARGE_HELP
from spl_sdk.text import printable

REFINE_FIELDS = ["structure_loss", "structure_weight", "structure_area", "color_loss",
                 "color_weight", "color_area", "iterations", "solver", "align", "post_processors"]
_FILE = click.Path(dir_okay=False, path_type=Path)


def _resolve(config_file: Path | None, mask: Path | None, iters: int | None, cpl: bool,
             fields: dict[str, Any], option_texts: tuple[str, ...] = ()) -> RefineConfig:
    """The run's config: file, then flags; --iters alias; --cpl and a lone --mask as in ``spl edit``."""
    from spl_sdk.errors import ConfigError
    from spl_sdk.loss_flags import resolve_loss_options
    from spl_sdk.options import parse_options

    if iters is not None and fields.get("iterations") not in (None, iters):
        raise ConfigError("--iters is an alias of --iterations; give only one of them.")
    fields["iterations"] = iters if iters is not None else fields.get("iterations")
    options = parse_options(option_texts) if option_texts else None
    cfg = resolve_loss_options(RefineConfig, config_file, mask=mask, cpl=cpl, options=options, **fields)
    if cfg.structure_loss is None and cfg.color_loss is None:
        raise ConfigError("both --structure-loss and --color-loss are off; turn at least one on.")
    return cfg


def command_line(source: Path, edited: Path, output: Path, cfg: RefineConfig) -> str:
    """A self-contained ``spl refine`` command that reproduces this run (every field spelt out)."""
    args = ["spl", "refine", str(source), str(edited), "-o", str(output)]
    for name, value in cfg.model_dump(mode="json").items():
        flag = "--mask" if name == "mask_file" else "--" + name.replace("_", "-")
        if name == "options":
            args += [a for component, fields in value.items() for field, v in fields.items()
                     for a in ("--option", f"{component}.{field}={_option_text(v)}")]
        elif isinstance(value, list):
            args += [flag, ",".join(value)] if value else []
        elif value is not None:
            args += [flag, str(value)]
        elif name.endswith("_loss"):
            args += [flag, "none"]
    return shlex.join(args)


def _option_text(value: Any) -> str:
    """VALUE as --option reads it back: plain text for a string that is not JSON, else JSON."""
    from spl_sdk.options import parse_value

    return value if isinstance(value, str) and parse_value(value) == value else json.dumps(value)


@command("refine", epilog=epilog(
    'spl refine photo.png edited.png -o fixed.png', 'spl refine photo.png edited.png --cpl --mask mask.png --iterations 200 -o fixed.png'))
@sections
@click.argument("source", type=_FILE)
@click.argument("edited", type=_FILE)
@click.option("-o", "--output", required=True, type=_FILE,
              help="Result file; .png (keeps the run configuration), .jpg, .webp or .tiff.")
@click.option("--mask", type=_FILE, default=None,
              help="Mask image, white = inside (resized to SOURCE). Masked losses use it; when "
                   "neither --structure-area nor --color-area is 'masked', both terms are masked.")
@alias("--iters", "iters", type=int, instead="--iterations")
@click.option("--cpl", is_flag=True, help="Shortcut for --color-loss cpl.")
@click.option("--config", "config_file", type=_FILE, default=None,
              help="JSON, YAML or TOML file of configuration fields, or a result PNG to repeat its "
                   "configuration; flags override it.")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT (and the --save-alignment files) if they exist.")
@click.option("--allow-large", is_flag=True, help=ALLOW_LARGE_HELP)
@click.option("--save-alignment", type=_FILE, default=None,
              help="Also write the aligned edit (before refinement) to this file, and its coverage mask "
                   "(white = covered by the edit) beside it as NAME.coverage.png.")
@click.option("--device", default="auto", show_default=True,
              help="Where the refine runs and the aligned edit is resampled: auto (the CUDA GPU when there "
                   "is one), cpu, cuda or cuda:N. The warp itself is estimated by OpenCV on the CPU.")
@click.option("--dtype", type=click.Choice(["auto", "float32"]), default="auto", show_default=True,
              help="Precision of the refine; its solver computes in float32.")
@quiet_flag
@option_flag
@config_options(RefineConfig, REFINE_FIELDS)
@handle_errors
def refine(source: Path, edited: Path, output: Path, mask: Path | None, iters: int | None,
           cpl: bool, config_file: Path | None, force: bool, allow_large: bool, save_alignment: Path | None,
           device: str, dtype: str, quiet: bool, option_texts: tuple[str, ...], **fields: Any) -> None:
    """Restore SOURCE's edges in EDITED (any edit of it) and write OUTPUT at SOURCE's size.

    EDITED is first registered onto SOURCE (--align, default auto: a global warp and a
    smooth residual, each only when it improves the match), so an edit that moved,
    zoomed or came back at another size is refined in place. No model weights are
    needed: this runs the image-space optimizer of the loss terms only.
    """
    from spl_sdk import imageio
    from spl_sdk.align import describe
    from spl_sdk.cli.plugins import load_plugins
    from spl_sdk.cli.progress import progress_bar
    from spl_sdk.refiner import refine as run_refine

    cfg = _resolve(config_file, mask, iters, cpl, fields, option_texts)
    plugins = load_plugins()
    imageio.check_output(output, force)  # fail before the work, not after
    if save_alignment is not None:
        imageio.check_output(save_alignment, force)
    src = imageio.load_image(source)
    start = imageio.load_image(edited)
    if start.size != src.size:
        click.echo(f"resizing {printable(edited)} from {start.size[0]}x{start.size[1]} to the source's "
                   f"{src.size[0]}x{src.size[1]}", err=True)
    with progress_bar("refine", quiet=quiet) as progress:
        result = run_refine(src, start, config=cfg, plugins=plugins, device=device, dtype=dtype,
                            on_step=progress, allow_large=allow_large)
    cfg = result.config
    extra = {"command": command_line(source, edited, output, cfg), "source": str(source),
             "edited": str(edited), "mask": cfg.mask_file and str(cfg.mask_file)}
    if save_alignment is not None:
        result.save_alignment(save_alignment, force=force)
    result.save(output, force=force, extra=extra)
    click.echo(describe(result.alignment))
    click.echo(f"loss before: {result.loss_before:.6g}, after: {result.loss_after:.6g}")
    click.echo(f"wrote {printable(output)} ({src.size[0]}x{src.size[1]}, "
               f"{sum(result.timings.values()):.1f} s on {result.device})")
