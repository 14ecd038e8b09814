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
                 "color_weight", "color_area", "iterations", "solver"]
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
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("--allow-large", is_flag=True, help=ALLOW_LARGE_HELP)
@quiet_flag
@option_flag
@config_options(RefineConfig, REFINE_FIELDS)
@handle_errors
def refine(source: Path, edited: Path, output: Path, mask: Path | None, iters: int | None,
           cpl: bool, config_file: Path | None, force: bool, allow_large: bool, quiet: bool,
           option_texts: tuple[str, ...], **fields: Any) -> None:
    """Restore SOURCE's edges in EDITED (any edit of it) and write OUTPUT at SOURCE's size.

    EDITED and the mask are resized to SOURCE first (Lanczos / bilinear). No model
    weights are needed: this runs the image-space optimiser of the loss terms only.
    """
    from PIL import Image

    from spl_sdk import __version__, imageio
    from spl_sdk.cli.plugins import load_plugins
    from spl_sdk.cli.progress import progress_bar
    from spl_sdk.footprint import check_fits, out_of_memory_as_error
    from spl_sdk.optimiser import optimise_image
    from spl_sdk.options import check_options, with_resolved_options
    from spl_sdk.terms import build_terms, check_terms

    cfg = _resolve(config_file, mask, iters, cpl, fields, option_texts)
    plugins = load_plugins()
    check_options(plugins, cfg.options)  # every option, before the images are read
    cfg = with_resolved_options(plugins, cfg)  # the metadata records every option value used
    imageio.check_output(output, force)  # fail before the work, not after
    src = imageio.load_image(source)
    check_fits(*src.size, "refine it at full size", allow_large)  # before the slow part
    start = imageio.load_image(edited)
    if start.size != src.size:
        click.echo(f"resizing {printable(edited)} from {start.size[0]}x{start.size[1]} to the source's "
                   f"{src.size[0]}x{src.size[1]}", err=True)
        start = start.resize(src.size, Image.Resampling.LANCZOS)
    mask_t = None
    if cfg.mask_file is not None:
        mask_t = imageio.mask_to_tensor(imageio.load_mask(cfg.mask_file, size=src.size))
    terms = build_terms(plugins, cfg, mask_t)
    check_terms(plugins, terms, imageio.pil_to_tensor(src), imageio.pil_to_tensor(start))
    with progress_bar("refine", quiet=quiet) as progress, out_of_memory_as_error(*src.size, "refine it"):
        result = optimise_image(imageio.pil_to_tensor(src), imageio.pil_to_tensor(start), terms,
                                iterations=cfg.iterations, solver=cfg.solver, progress=progress)
    metadata = {"spl_sdk": __version__, "command": command_line(source, edited, output, cfg),
                "source": str(source), "edited": str(edited), "mask": cfg.mask_file and str(cfg.mask_file),
                "config": cfg.model_dump(mode="json"),
                "loss_before": result.loss_before, "loss_after": result.loss_after}
    imageio.save_image(imageio.tensor_to_pil(result.image), output, metadata=metadata, force=force)
    click.echo(f"loss before: {result.loss_before:.6g}, after: {result.loss_after:.6g}")
    click.echo(f"wrote {printable(output)} ({src.size[0]}x{src.size[1]}, {result.seconds:.1f} s)")
