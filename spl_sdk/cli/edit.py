"""``spl edit``: text-driven, structure-preserving edit of one photo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from spl_sdk.aliases import ALIASES, OldFlags
from spl_sdk.cli.help import command, epilog, sections
from spl_sdk.cli.options import config_options, handle_errors, option_flag, quiet_flag
from spl_sdk.config import EditConfig
from spl_sdk.footprint import ALLOW_LARGE_HELP
from spl_sdk.text import printable
from spl_sdk.weights import ALLOW_PICKLE_HELP

EDIT_FIELDS = [name for name in EditConfig.model_fields if name not in ("mask_file", "options")]


@command(epilog=epilog(
    'spl edit photo.png -s "a photo of a cat" -t "a photo of a dog" -o dog.png',
    'spl edit photo.png -t "make it night" --backbone flux-kontext-dev -o night.png',
    'spl edit photo.png -s "a cat on a sofa" -t "a tiger on a sofa" --structure-area masked '
    '--mask-words-source cat --mask-words-target tiger -o tiger.png',
    'spl edit photo.png -s "a cat on a sofa" -t "a tiger on a sofa" --edit-area masked --mask cat.png '
    '-o tiger.png'))
@sections
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--source", "-s", "source_prompt", default=None,
              help="Sentence describing the photo (required unless --config is a result PNG, or the "
                   "method edits from an instruction alone, e.g. instruct).")
@click.option("--target", "-t", "target_prompt", default=None,
              help="Sentence describing the wanted result, or the instruction for an instruction-edit "
                   "model ('make it night'); required unless --config is a result PNG.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the result (PNG keeps the run configuration).")
@click.option("--mask", "mask_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Mask image (white or opaque = inside) used instead of attention-derived masks; "
                   "when no loss area is set to 'masked', every active loss is masked; with "
                   "--edit-area masked the edit stays inside it.")
@click.option("--save-mask", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the mask used by masked losses to this file.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON, YAML or TOML file of configuration fields, or a result PNG to repeat its "
                   "run (configuration and prompts); flags override it.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--cpl", is_flag=True, default=False, help="Shortcut for --color-loss cpl.")
@click.option("--allow-pickle", is_flag=True, help=ALLOW_PICKLE_HELP)
@click.option("--allow-large", is_flag=True, help=ALLOW_LARGE_HELP)
@click.option("--post-processor", "post_processor", default=None, hidden=True,
              help="Deprecated: use --post-processors (this one runs after loss-refine).")
@quiet_flag
@option_flag
@config_options(EditConfig, EDIT_FIELDS)
@config_options(OldFlags, list(ALIASES))  # old names: each writes its component's option
@handle_errors
def edit(image: Path, source_prompt: str, target_prompt: str, output: Path, mask_file: Path | None,
         save_mask: Path | None, config_file: Path | None, force: bool, cpl: bool, allow_pickle: bool,
         allow_large: bool, post_processor: str | None, quiet: bool, option_texts: tuple[str, ...],
         **fields: Any) -> None:
    """Edit IMAGE from the --source sentence towards the --target sentence, keeping its edges."""
    from spl_sdk.cli import prechecks
    from spl_sdk.cli.progress import phase_progress
    from spl_sdk.editor_cache import load_editor
    from spl_sdk.footprint import check_fits, out_of_memory_as_error
    from spl_sdk.imageio import check_distinct, check_output, load_image
    from spl_sdk.loss_flags import resolve_loss_options
    from spl_sdk.options import parse_options

    image = _image(image, config_file)
    source_prompt, target_prompt = _prompts(source_prompt, target_prompt, config_file)
    options = parse_options(option_texts) if option_texts else None
    # --cpl and a lone --mask mean the same as in `spl refine` (one shared rule)
    cfg = resolve_loss_options(EditConfig, config_file, mask=mask_file, cpl=cpl, options=options,
                               post_processor=post_processor, **fields)
    check_distinct({"-o": output, "--save-mask": save_mask})  # one result must not clobber the other
    for path in filter(None, (output, save_mask)):
        check_output(path, force)  # fail before the work, not after
    photo = load_image(image)
    if cfg.post_process:  # full-size post-processing: refuse before the model loads
        check_fits(*photo.size, "post-process it at full size", allow_large)
    plugins = _before_load(cfg, photo, source_prompt, target_prompt, quiet)
    with prechecks.loading_status("" if quiet else prechecks.loading_line(plugins, cfg)):
        editor = load_editor(cfg, plugins, allow_pickle=allow_pickle)
    with phase_progress(quiet=quiet) as report, out_of_memory_as_error(*photo.size, "edit it"):
        result = editor.edit(photo, source_prompt, target_prompt, on_phase=report)
    result.save(output, force=force, mask_path=save_mask,
                extra={"command": "spl edit", "image": str(image)})
    if save_mask is not None and result.mask is None:
        click.echo("No mask was used (no loss is set to the masked area); --save-mask ignored.", err=True)
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    click.echo(f"wrote {printable(output)} ({timings})")


def _image(image: Path | None, config_file: Path | None) -> Path:
    """IMAGE, else the photo a result PNG given as --config records (repeating its run)."""
    from spl_sdk.config import RESULT_SUFFIXES, result_metadata

    if image is not None:
        return image
    if config_file is None or config_file.suffix.lower() not in RESULT_SUFFIXES:
        raise click.UsageError("Missing argument 'IMAGE'.")
    recorded = result_metadata(config_file).get("image")
    if not recorded:
        raise click.UsageError(f"Missing argument 'IMAGE': {printable(config_file)} records no photo; "
                               f"give the photo to edit.")
    if not Path(recorded).is_file():
        raise click.UsageError(f"Missing argument 'IMAGE': the photo {printable(config_file)} was made "
                               f"from, '{recorded}', is not there; give the photo to edit.")
    return Path(recorded)


def _before_load(cfg: EditConfig, photo: Any, source_prompt: str, target_prompt: str,
                 quiet: bool) -> Any:
    """Checks that need no weights (names, words, options, mask), and their warnings; the plug-ins."""
    from spl_sdk import editor as editor_module
    from spl_sdk.cli import prechecks
    from spl_sdk.imageio import load_mask
    from spl_sdk.options import check_options, options_for
    from spl_sdk.plan import check_region_given

    plugins = editor_module.get_plugins()  # the manager the editor would build (tests swap it)
    for message in plugins.load_errors:
        click.echo(f"Warning: {message}", err=True)
    plugins.backbone(cfg.backbone)  # an unknown name (did you mean ...?) before anything else
    if cfg.method:
        plugins.edit_method(cfg.method)
    check_options(plugins, cfg.options)  # every option's name and value
    prechecks.check_words(plugins, cfg, source_prompt, target_prompt)
    notes = prechecks.unused_option_warnings(plugins, cfg)
    if cfg.mask_file is not None:
        notes.append(prechecks.mask_warning(load_mask(cfg.mask_file, size=photo.size)))
    elif cfg.edit_area == "masked" and cfg.mask_extractor in plugins.names("mask-extractor"):
        check_region_given(cfg, options_for(plugins, "mask-extractor", cfg.mask_extractor, cfg.options))
    for note in filter(None, notes):
        click.echo(f"Warning: {note}", err=True)
    return plugins


def _prompts(source: str | None, target: str | None, config_file: Path | None) -> tuple[str, str]:
    """The prompts given, else those of the result PNG passed as --config (repeating its run)."""
    from spl_sdk.config import RESULT_SUFFIXES, result_metadata

    if (source is None or target is None) and config_file is not None \
            and config_file.suffix.lower() in RESULT_SUFFIXES:
        meta = result_metadata(config_file)
        source = source if source is not None else meta.get("source_prompt")
        target = target if target is not None else meta.get("target_prompt")
    if target is None:
        raise click.UsageError("Missing option '--target' / '-t'.")
    # no --source: "", which an instruction method (--method instruct) accepts and others refuse
    return source or "", target
