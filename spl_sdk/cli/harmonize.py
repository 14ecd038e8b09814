"""``spl harmonize``: write the prompts for a composite and its mask, then run the harmonizing edit.

The edit follows docs/method.md section 6 (spl_sdk.harmonizing, the recipe every door
runs): SPL on the whole image, CPL on the background only (the inverted mask). With two
folders the composites (masks matched by file stem) become harmonize rows of the batch
runner (spl_sdk.jobs), so resume, --force and the results table are ``spl batch``'s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from spl_sdk.cli.help import command, epilog, sections
from spl_sdk.cli.options import alias, config_options, handle_errors, option_flag, quiet_flag
from spl_sdk.config import EditConfig
from spl_sdk.errors import SplError
from spl_sdk.footprint import ALLOW_LARGE_HELP
from spl_sdk.harmonizing import DEFAULT_HARMONIZER, HarmonizerChoice, harmonizer_options, scrub
from spl_sdk.text import printable
from spl_sdk.weights import ALLOW_PICKLE_HELP

if TYPE_CHECKING:
    from spl_sdk.jobs.manifest import Row

EDIT_FIELDS = ["backbone", "model", "device", "dtype", "cpu_offload", "working_size", "steps", "seed",
               "structure_weight", "color_weight", "iterations", "solver", "post_process"]
MANIFEST_NAME = "manifest.jsonl"  # what --prompts-only writes for a folder of composites


@command(epilog=epilog(
    'spl harmonize composite.png mask.png -o harmonized.png',
    'spl harmonize composites/ masks/ --harmonizer openai --option openai.model=gpt-4.1-mini -o out/',
    'spl harmonize composites/ masks/ --prompts-only -o out/   # then: spl batch out/manifest.jsonl -o out'))
@sections
@click.argument("composite", type=click.Path(exists=True, path_type=Path))
@click.argument("mask", type=click.Path(exists=True, path_type=Path))
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Result file (one composite) or the batch's folder (folders of composites and masks): "
                   "OUT/images/NAME.png, OUT/results.jsonl and .parquet, as spl batch writes them.")
@click.option("--harmonizer", "harmonizer_name", default=DEFAULT_HARMONIZER, show_default=True,
              help="Harmonizer plug-in that writes the prompts; 'spl plugins' lists the installed "
                   "ones and 'spl plugins NAME' a harmonizer's options.")
@click.option("--object", "object_word", default=None,
              help="Word(s) naming the pasted object, e.g. 'cat' (the harmonizer's guess if unset).")
@option_flag
@click.option("--harmonizer-model", default=None, hidden=True,
              help="Model the harmonizer asks (deprecated: use --option openai.model=...).")
@click.option("--api-key", default=None,
              help="API key of the harmonizer; prefer its environment variable, e.g. OPENAI_API_KEY "
                   "(a flag ends up in the shell history). Never written to any output "
                   "(deprecated: use --option openai.api_key=...).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds to wait for one harmonizer API call "
                   "(deprecated: use --option openai.timeout=...).")
@click.option("--max-attempts", type=click.IntRange(1, 10), default=None,
              help="Answers to ask for before giving up when they break the vocabulary "
                   "(deprecated: use --option openai.max_attempts=...).")
@click.option("--prompts-only", is_flag=True,
              help="Only write the prompts; run no edit. With folders: write OUT/manifest.jsonl of "
                   "harmonize rows to review, then run 'spl batch OUT/manifest.jsonl -o OUT'.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Folders only: the batch engine (as spl batch --engine; ray: a local Ray Data pool).")
@click.option("--json", "as_json", is_flag=True, help="Print the harmonization as JSON.")
@alias("--backbone-model", "backbone_model", instead="--model")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON, YAML or TOML file of edit configuration fields (or a result PNG); flags "
                   "override it.")
@click.option("--force", is_flag=True,
              help="Overwrite the output file; with folders, replace files in OUT/images/ that spl did "
                   "not write and an existing OUT/manifest.jsonl.")
@click.option("--allow-pickle", is_flag=True, help=ALLOW_PICKLE_HELP)
@click.option("--allow-large", is_flag=True, help=ALLOW_LARGE_HELP)
@quiet_flag
@config_options(EditConfig, EDIT_FIELDS)
@handle_errors
def harmonize(composite: Path, mask: Path, output: Path | None, harmonizer_name: str,
              object_word: str | None, option_texts: tuple[str, ...], harmonizer_model: str | None,
              api_key: str | None,
              timeout: float | None, max_attempts: int | None, prompts_only: bool, engine: str,
              as_json: bool,
              backbone_model: str | None, config_file: Path | None, force: bool,
              allow_pickle: bool, allow_large: bool, quiet: bool, **fields: Any) -> None:
    """Harmonize the object pasted into COMPOSITE (white in MASK) with its background.

    COMPOSITE and MASK are image files, or two folders: masks are matched by file name
    without suffix and every composite becomes a harmonize row of the batch runner
    (docs/batch.md), so OUT gets images/NAME.png, results.jsonl, results.parquet and
    batch.json, and a rerun resumes as spl batch does. --harmonizer chooses the plug-in
    that writes the prompts and --option NAME.FIELD=VALUE sets its options (and those of
    the edit's components). The edit keeps every edge (SPL on the whole image) and the
    background's colors (CPL outside the mask); --config sets the rest.
    """
    from spl_sdk.options import check_options, construct
    from spl_sdk.plugins import get_plugins

    batch = composite.is_dir()
    if batch != mask.is_dir():
        raise SplError(f"COMPOSITE '{composite}' and MASK '{mask}' must both be files or both be "
                       f"folders (masks matched to composites by file name).")
    if output is None and (batch or not prompts_only):
        raise SplError("pass -o OUT: the result file, or a folder when COMPOSITE and MASK are folders.")
    if output is not None and not batch and prompts_only:
        raise SplError("--prompts-only writes no image for a single composite; drop -o OUT.")
    plugins = get_plugins()
    legacy = {"model": harmonizer_model, "api_key": api_key, "timeout": timeout,
              "max_attempts": max_attempts}
    raw = _all_options(plugins, harmonizer_name, config_file, legacy, option_texts)
    check_options(plugins, raw)  # every option, before any image is read or model loaded
    choice = HarmonizerChoice(harmonizer_name, harmonizer_options(plugins, raw))
    harmonizer = construct(plugins, "harmonizer", harmonizer_name, raw)  # a missing key: said now
    edit_options = _edit_options(plugins, raw)
    if backbone_model is not None and fields.get("model") not in (None, backbone_model):
        raise SplError("--backbone-model is the old spelling of --model; give only one of them.")
    fields["model"] = fields.get("model") or backbone_model
    cfg = None if prompts_only else _edit_config(config_file, fields, edit_options)
    if batch:
        assert output is not None
        rows = folder_rows(composite, mask, object_word)
        if prompts_only:
            failed = write_manifest(rows, harmonizer, choice, output / MANIFEST_NAME, force, as_json)
        else:
            assert cfg is not None
            failed = _run_rows(rows, output, cfg, choice, engine, force, allow_pickle, as_json, quiet)
        if failed:
            raise SystemExit(1)
        return
    _Single(harmonizer, choice, plugins, object_word, cfg, force, as_json, allow_pickle, allow_large,
            quiet).run(composite, mask, output)


def _all_options(plugins: Any, harmonizer_name: str, config_file: Path | None,
                 legacy: dict[str, Any], option_texts: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Options from the config file, the deprecated harmonizer flags and --option (later wins).

    A deprecated flag maps onto the option of that name of the selected
    harmonizer; a harmonizer without such an option ignores it with a note.
    """
    from spl_sdk.config import read_config_file
    from spl_sdk.options import merge_options, parse_options

    fields = plugins.harmonizer(harmonizer_name).Options.model_fields
    given = {k: v for k, v in legacy.items() if v is not None}
    for name in [k for k in given if k not in fields]:
        flag = "--" + ("harmonizer-model" if name == "model" else name.replace("_", "-"))
        click.echo(f"Note: {flag} does not apply to harmonizer '{harmonizer_name}' (it has no "
                   f"option '{name}'); ignored.", err=True)
        del given[name]
    file_options = read_config_file(config_file).get("options") if config_file else None
    return merge_options(file_options, {harmonizer_name: given} if given else None,
                         parse_options(option_texts))


def _edit_options(plugins: Any, raw: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The options meant for the edit's components (harmonizer options, keys included, stay out)."""
    theirs = harmonizer_options(plugins, raw)
    return {k: v for k, v in raw.items() if k not in theirs}


def _edit_config(config_file: Path | None, fields: dict[str, Any],
                 options: dict[str, dict[str, Any]] | None = None) -> EditConfig:
    """The edit configuration with docs/method.md section 6's loss settings (they win over the file)."""
    from spl_sdk.config import build_config
    from spl_sdk.harmonize import EDIT_SETTINGS
    from spl_sdk.harmonizing import harmonize_config

    cfg = build_config(EditConfig, config_file, **fields, **EDIT_SETTINGS)
    # options were merged (file, flags) by the caller; harmonizer options are not the edit's
    return harmonize_config(cfg if options is None else cfg.model_copy(update={"options": options}))


def folder_rows(composites: Path, masks: Path, object_word: str | None) -> list[Row]:
    """One harmonize row per composite; one without exactly one mask (by stem) carries why as its error."""
    from spl_sdk.folders import by_stem, image_files
    from spl_sdk.jobs.manifest import manifest_rows

    mask_files = by_stem(image_files(masks))
    files = image_files(composites)
    if not files:
        raise SplError(f"no images in the composite folder '{composites}'; give a folder of PNG, "
                       f"JPEG, WebP, TIFF or BMP files.")
    records = [{"task": "harmonize", "id": path.stem, "image": str(path.resolve()), "object": object_word,
                "mask": str(found[0].resolve()) if len(found := mask_files.get(path.stem, [])) == 1 else None}
               for path in files]
    rows = manifest_rows(records, Path.cwd())
    for row, path in zip(rows, files, strict=True):
        found = mask_files.get(path.stem, [])
        if len(found) != 1:
            row.problem = (f"no mask named '{path.stem}.*' for composite '{path.name}'; add one to the "
                           f"mask folder." if not found else
                           f"several masks match '{path.name}' ({', '.join(m.name for m in found)}); "
                           f"keep one.")
    return rows


def _run_rows(rows: list[Row], out_dir: Path, cfg: EditConfig, choice: HarmonizerChoice, engine: str,
              force: bool, allow_pickle: bool, as_json: bool, quiet: bool) -> int:
    """Run harmonize rows with the batch runner (resume, locking, results table); the number failed."""
    from spl_sdk.cli.batch import run_with_progress

    def on_record(record: dict[str, Any]) -> None:
        if as_json:
            click.echo(json.dumps(record, sort_keys=True, default=str))
        elif record.get("status") == "ok":
            click.echo(printable(f"ok     {record['id']}: '{record['source_prompt']}' -> "
                                 f"'{record['target_prompt']}'"))

    summary = run_with_progress(rows, out_dir, cfg, quiet=quiet, on_record=on_record, engine=engine,
                                force=force, harmonizer=choice, allow_pickle=allow_pickle,
                                ray_options={"concurrency": 1})
    return summary.failed


def write_manifest(rows: list[Row], harmonizer: Any, choice: HarmonizerChoice, path: Path, force: bool,
                   as_json: bool) -> int:
    """Ask the harmonizer for every row and write the rows, prompts filled, as a manifest to review.

    Rows that fail (no mask, a harmonizer error) are reported and left out; returns their number.
    """
    from spl_sdk.imageio import check_writable, load_image, load_mask
    from spl_sdk.jobs.results import write_bytes

    check_writable(path, force)  # a manifest the user may have edited is never replaced silently
    lines, failed = [], 0
    for row in rows:
        try:
            if row.problem:
                raise SplError(row.problem)
            image = load_image(row.image)
            found = harmonizer.describe(image, load_mask(row.mask, image.size), row.object)
        except Exception as exc:  # one broken file must not stop the others
            failed += 1
            text = str(exc) if isinstance(exc, SplError) else f"{type(exc).__name__}: {exc}"
            click.echo(printable(f"error  {row.id}: {scrub(text, choice.secrets())}"), err=not as_json)
            continue
        line = {"id": row.id, "task": "harmonize", "image": row.image, "mask": row.mask,
                "source_prompt": found.source_prompt, "target_prompt": found.target_prompt}
        if row.object is not None:
            line["object"] = row.object
        lines.append(json.dumps(line, ensure_ascii=False))
        click.echo(json.dumps(line) if as_json else
                   printable(f"ok     {row.id}: '{found.source_prompt}' -> '{found.target_prompt}'"))
    if lines:
        write_bytes(path, "".join(f"{line}\n" for line in lines).encode("utf-8"))
        click.echo(f"wrote {printable(path)} ({len(lines)} rows, {failed} failed); review the prompts, "
                   f"then run: spl batch {printable(path)} -o {printable(path.parent)}", err=True)
    else:
        click.echo(f"no prompts written: every composite failed ({failed}).", err=True)
    return failed


class _Single:
    """One composite: ask the harmonizer, then run the harmonize recipe and save the result."""

    def __init__(self, harmonizer: Any, choice: HarmonizerChoice, plugins: Any, object_word: str | None,
                 cfg: EditConfig | None, force: bool, as_json: bool, allow_pickle: bool,
                 allow_large: bool, quiet: bool) -> None:
        self.harmonizer, self.choice, self.plugins, self.object_word = harmonizer, choice, plugins, object_word
        self.cfg, self.force, self.as_json = cfg, force, as_json
        self.allow_pickle = allow_pickle  # --allow-pickle: pickle weights may load (with a warning)
        self.allow_large = allow_large  # --allow-large: skip the up-front memory estimate
        self.quiet = quiet  # --quiet: no progress on stderr

    def run(self, composite: Path, mask: Path, output: Path | None) -> None:
        from spl_sdk.imageio import check_output, load_image, load_mask

        if output is not None:
            if output.is_dir():
                output = output / f"{composite.stem}.png"
            check_output(output, self.force)  # fail before the slow part
        image = load_image(composite)
        fg = load_mask(mask, image.size)
        found = self.harmonizer.describe(image, fg, self.object_word)
        if self.as_json and output is None:
            click.echo(found.model_dump_json(indent=2))
            return
        if not self.as_json:
            click.echo(f"source prompt: {printable(found.source_prompt)}\n"
                       f"target prompt: {printable(found.target_prompt)}")
        if output is None:
            return
        timings = self.edit(image, fg, found, composite, mask, output)
        if self.as_json:
            click.echo(json.dumps(found.model_dump(mode="json") | {"output": str(output)}, indent=2))
        else:
            click.echo(f"wrote {printable(output)} ({', '.join(f'{k} {v:.1f}s' for k, v in timings.items())})")

    def edit(self, image: Any, fg: Any, found: Any, composite: Path, mask: Path, output: Path) -> dict[str, float]:
        """Run the harmonize recipe (spl_sdk.harmonizing) and save it atomically with its metadata."""
        from spl_sdk.cli.progress import phase_progress
        from spl_sdk.editor_cache import load_editor
        from spl_sdk.footprint import check_fits, out_of_memory_as_error
        from spl_sdk.harmonizing import harmonization_record, harmonize_edit

        assert self.cfg is not None
        if self.cfg.post_process:  # before the model loads
            check_fits(*image.size, "post-process it at full size", self.allow_large)
        record = harmonization_record(found, self.choice.public(self.plugins))
        with phase_progress(quiet=self.quiet) as report, out_of_memory_as_error(*image.size, "edit it"):
            editor = load_editor(self.cfg, self.plugins, allow_pickle=self.allow_pickle)
            result = harmonize_edit(editor, image, fg, found.source_prompt, found.target_prompt,
                                    config=self.cfg, record=record,
                                    on_phase=lambda phase, done, total: report(
                                        f"harmonize {phase}", done, total))
        result.save(output, force=self.force, extra={"command": "spl harmonize", "composite": str(composite),
                                                     "mask": str(mask)})
        return result.timings
