"""``spl harmonize``: write the prompts for a composite and its mask, then run the harmonizing edit.

The edit follows docs/method.md section 6: SPL on the whole image, CPL on the
background only (the inverted mask). With two folders it runs a batch: masks
are matched to composites by file stem, every image gets one record in
``OUT/harmonize.jsonl``, and a rerun skips the images already recorded as ok.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from spl_sdk.cli.help import command, epilog, sections
from spl_sdk.cli.options import alias, config_options, handle_errors, option_flag, quiet_flag
from spl_sdk.config import EditConfig
from spl_sdk.errors import ImageError, SplError
from spl_sdk.footprint import ALLOW_LARGE_HELP
from spl_sdk.text import printable
from spl_sdk.weights import ALLOW_PICKLE_HELP

if TYPE_CHECKING:
    from spl_sdk.components import Harmonizer
    from spl_sdk.editor import Editor
    from spl_sdk.harmonize import Harmonization

EDIT_FIELDS = ["backbone", "model", "device", "dtype", "cpu_offload", "working_size", "steps", "seed",
               "structure_weight", "color_weight", "iterations", "solver", "post_process"]
LOG_NAME = "harmonize.jsonl"
DEFAULT_HARMONIZER = "offline"  # needs no key and no network
SECRET_HINTS = ("key", "token", "secret", "password")
# environment variables whose values are scrubbed from records (e.g. a harmonizer's API key)
SECRET_VARIABLES = ("_API_KEY", "_TOKEN", "_SECRET")


@command(epilog=epilog(
    'spl harmonize composite.png mask.png -o harmonized.png', 'spl harmonize composites/ masks/ --harmonizer openai --option openai.model=gpt-4.1-mini -o out/'))
@sections
@click.argument("composite", type=click.Path(exists=True, path_type=Path))
@click.argument("mask", type=click.Path(exists=True, path_type=Path))
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Result file (one composite) or folder (folders of composites and masks).")
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
@click.option("--prompts-only", is_flag=True, help="Only write the prompts; run no edit.")
@click.option("--json", "as_json", is_flag=True, help="Print the harmonization as JSON.")
@alias("--backbone-model", "backbone_model", instead="--model")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON, YAML or TOML file of edit configuration fields (or a result PNG); flags "
                   "override it.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--allow-pickle", is_flag=True, help=ALLOW_PICKLE_HELP)
@click.option("--allow-large", is_flag=True, help=ALLOW_LARGE_HELP)
@quiet_flag
@config_options(EditConfig, EDIT_FIELDS)
@handle_errors
def harmonize(composite: Path, mask: Path, output: Path | None, harmonizer_name: str,
              object_word: str | None, option_texts: tuple[str, ...], harmonizer_model: str | None,
              api_key: str | None,
              timeout: float | None, max_attempts: int | None, prompts_only: bool, as_json: bool,
              backbone_model: str | None, config_file: Path | None, force: bool,
              allow_pickle: bool, allow_large: bool, quiet: bool, **fields: Any) -> None:
    """Harmonize the object pasted into COMPOSITE (white in MASK) with its background.

    COMPOSITE and MASK are image files, or two folders (masks matched by file name
    without suffix; OUT is then a folder and gets harmonize.jsonl, and a rerun
    resumes). --harmonizer chooses the plug-in that writes the prompts and
    --option NAME.FIELD=VALUE sets its options (and those of the edit's
    components). The edit keeps every edge (SPL on the whole image) and the
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
    harmonizer = construct(plugins, "harmonizer", harmonizer_name, raw)
    edit_options = _edit_options(plugins, raw)
    if backbone_model is not None and fields.get("model") not in (None, backbone_model):
        raise SplError("--backbone-model is the old spelling of --model; give only one of them.")
    fields["model"] = fields.get("model") or backbone_model
    cfg = None if prompts_only else _edit_config(config_file, fields, edit_options)
    secrets = [str(v) for fields in raw.values() for k, v in fields.items() if _secret_name(k)]
    job = _Job(harmonizer, harmonizer_name, object_word, cfg, plugins, force, as_json, (api_key, *secrets))
    job.allow_pickle, job.allow_large = allow_pickle, allow_large
    job.quiet = quiet
    if batch:
        assert output is not None
        failed = job.run_batch(composite, mask, output)
        if failed:
            raise SystemExit(1)
    else:
        job.run_single(composite, mask, output)


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
    from spl_sdk.options import resolve_key

    return {k: v for k, v in raw.items() if resolve_key(plugins, k)[0] != "harmonizer"}


def _edit_config(config_file: Path | None, fields: dict[str, Any],
                 options: dict[str, dict[str, Any]] | None = None) -> EditConfig:
    """The edit configuration with docs/method.md section 6's loss settings (they win over the file)."""
    from spl_sdk.config import build_config
    from spl_sdk.harmonize import EDIT_SETTINGS

    cfg = build_config(EditConfig, config_file, **fields, **EDIT_SETTINGS)
    # options were merged (file, flags) by the caller; harmonizer options are not the edit's
    return cfg if options is None else cfg.model_copy(update={"options": options})


def _public_options(harmonizer: Harmonizer) -> dict[str, Any]:
    """The harmonizer's options fit for output files: anything that looks like a secret is dropped."""
    from spl_sdk.components import ComponentOptions
    from spl_sdk.options import public_dump

    options = getattr(harmonizer, "options", None) or {}
    if isinstance(options, ComponentOptions):
        options = public_dump(options)
    return {k: v for k, v in options.items() if not _secret_name(k)}


def _secret_name(name: str) -> bool:
    """True for option names that look like they hold a secret (api_key, token, ...)."""
    return any(h in name.lower() for h in SECRET_HINTS)


def recovered_record(output: Path, composite: Path) -> dict[str, Any]:
    """The harmonization of an existing batch output written for ``composite`` by spl harmonize.

    Raises OutputExistsError when the file is not such an output (it is then never overwritten
    without --force).
    """
    from spl_sdk.errors import OutputExistsError
    from spl_sdk.imageio import read_metadata

    try:
        meta = read_metadata(output) or {}
    except ImageError:
        meta = {}
    ours = (meta.get("command") == "spl harmonize" and isinstance(meta.get("harmonization"), dict)
            and Path(str(meta.get("composite", ""))).name == composite.name)
    if not ours:
        raise OutputExistsError(f"output '{output}' already exists and was not written by spl "
                                f"harmonize for '{composite.name}'; move it away or use --force.")
    return {**meta["harmonization"], "recovered": True}


class _Job:
    """One ``spl harmonize`` run: a harmonizer, an optional editor (loaded on first use)."""

    def __init__(self, harmonizer: Harmonizer, harmonizer_name: str, object_word: str | None,
                 cfg: EditConfig | None, plugins: Any, force: bool, as_json: bool,
                 secrets: tuple[str | None, ...] = ()) -> None:
        self.harmonizer, self.harmonizer_name, self.object_word = harmonizer, harmonizer_name, object_word
        self.cfg, self.plugins, self.force, self.as_json = cfg, plugins, force, as_json
        self._editor: Editor | None = None
        self.allow_pickle = False  # --allow-pickle: pickle weights may load (with a warning)
        self.allow_large = False  # --allow-large: skip the up-front memory estimate
        self.quiet = False  # --quiet: no progress on stderr
        from_env = [v for k, v in os.environ.items() if k.upper().endswith(SECRET_VARIABLES)]
        self.secrets = [s for s in (*from_env, *secrets) if s and len(s) >= 8]

    @property
    def editor(self) -> Editor:
        if self._editor is None:
            from spl_sdk.editor import Editor
            from spl_sdk.weights import allowing_pickle

            assert self.cfg is not None
            with allowing_pickle(self.allow_pickle):
                self._editor = Editor.from_config(self.cfg, self.plugins)
        return self._editor

    def describe(self, composite: Path, mask: Path) -> tuple[Any, Any, Harmonization]:
        """Load both images (the mask at the composite's size) and ask the harmonizer."""
        from spl_sdk.imageio import load_image, load_mask

        image = load_image(composite)
        fg = load_mask(mask, image.size)
        return image, fg, self.harmonizer.describe(image, fg, self.object_word)

    def edit(self, image: Any, fg: Any, h: Harmonization, composite: Path, mask: Path,
             output: Path, desc: str) -> dict[str, float]:
        """Run the harmonizing edit and save it atomically with prompts in the metadata."""
        from spl_sdk.cli.progress import phase_progress
        from spl_sdk.footprint import check_fits, out_of_memory_as_error
        from spl_sdk.harmonize import background_mask
        from spl_sdk.imageio import save_image

        assert self.cfg is not None
        if self.cfg.post_process:  # before the model loads (single runs load it here)
            check_fits(*image.size, "post-process it at full size", self.allow_large)
        with phase_progress(quiet=self.quiet) as report, out_of_memory_as_error(*image.size, "edit it"):
            result = self.editor.edit(image, h.source_prompt, h.target_prompt, mask=background_mask(fg),
                                      on_phase=lambda phase, done, total: report(
                                          f"{desc} {phase}", done, total))
        meta = result.metadata() | {
            "command": "spl harmonize", "composite": str(composite), "mask": str(mask),
            "harmonizer": self.harmonizer_name, "harmonizer_options": _public_options(self.harmonizer),
            "harmonization": h.model_dump(mode="json")}
        save_image(result.image, output, metadata=meta, force=self.force)
        return result.timings

    # ------------------------------------------------------------------ single
    def run_single(self, composite: Path, mask: Path, output: Path | None) -> None:
        from spl_sdk.imageio import check_output

        if output is not None:
            if output.is_dir():
                output = output / f"{composite.stem}.png"
            check_output(output, self.force)  # fail before the slow part
        image, fg, h = self.describe(composite, mask)
        if self.as_json and output is None:
            click.echo(h.model_dump_json(indent=2))
            return
        if not self.as_json:
            click.echo(f"source prompt: {printable(h.source_prompt)}\n"
                       f"target prompt: {printable(h.target_prompt)}")
        if output is None:
            return
        timings = self.edit(image, fg, h, composite, mask, output, "harmonize")
        if self.as_json:
            click.echo(json.dumps(h.model_dump(mode="json") | {"output": str(output)}, indent=2))
        else:
            click.echo(f"wrote {printable(output)} ({', '.join(f'{k} {v:.1f}s' for k, v in timings.items())})")

    # ------------------------------------------------------------------ batch
    def run_batch(self, composites: Path, masks: Path, out_dir: Path) -> int:
        """Process every composite not yet recorded ok; returns the number of failures."""
        from spl_sdk.batch import JsonlLog, by_stem, image_files
        from spl_sdk.imageio import check_writable

        if out_dir.exists() and not out_dir.is_dir():
            raise SplError(f"-o '{out_dir}' must be a folder when COMPOSITE and MASK are folders.")
        check_writable(out_dir / LOG_NAME, force=True)  # before the model loads
        out_dir.mkdir(parents=True, exist_ok=True)
        log = JsonlLog(out_dir / LOG_NAME)
        done = log.done()
        mask_files = by_stem(image_files(masks))
        todo = [p for p in image_files(composites) if p.name not in done]
        skipped = len(image_files(composites)) - len(todo)
        fresh = [p for p in todo if not (out_dir / f"{p.stem}.png").exists()]  # others: recovered
        if fresh and self.cfg is not None:
            _ = self.editor  # load once up front: a load error stops the batch, not each file
        failed = 0
        for path in todo:
            record = self._one(path, mask_files.get(path.stem, []), out_dir)
            log.append(record)
            failed += record["status"] != "ok"
            self._report(record)
        click.echo(f"{len(todo) - failed} ok, {failed} failed, {skipped} skipped (already done); "
                   f"records in {log.path}", err=True)
        return failed

    def _one(self, composite: Path, masks: list[Path], out_dir: Path) -> dict[str, Any]:
        """Harmonize one composite of a batch; any failure becomes an error record."""
        began = time.perf_counter()
        record: dict[str, Any] = {"file": composite.name, "mask": None, "harmonizer": self.harmonizer_name,
                                  "output": None, "status": "ok", "error": None}
        try:
            if len(masks) != 1:
                raise ImageError(
                    f"no mask named '{composite.stem}.*' for composite '{composite.name}'; add one "
                    f"to the mask folder." if not masks else
                    f"several masks match '{composite.name}' ({', '.join(m.name for m in masks)}); "
                    f"keep one.")
            record["mask"] = masks[0].name
            output = out_dir / f"{composite.stem}.png"
            if self.cfg is not None and (output.exists() or output.is_symlink()) and not self.force:
                # a run killed between writing the image and its record: take the image's own record
                record.update(recovered_record(output, composite), output=str(output))
                record["seconds"] = round(time.perf_counter() - began, 3)
                return record
            image, fg, h = self.describe(composite, masks[0])
            record.update(h.model_dump(mode="json"))
            if self.cfg is not None:
                self.edit(image, fg, h, composite, masks[0], output, composite.name)
                record["output"] = str(output)
        except SplError as exc:
            record.update(status="error", error=self.scrub(str(exc)))
        except Exception as exc:  # one broken file must not stop the batch
            record.update(status="error", error=self.scrub(f"{type(exc).__name__}: {exc}"))
        record["seconds"] = round(time.perf_counter() - began, 3)
        return record

    def scrub(self, text: str) -> str:
        """Belt and braces: no API key in a record, whatever an error message quoted."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def _report(self, record: dict[str, Any]) -> None:
        if self.as_json:
            click.echo(json.dumps(record, sort_keys=True))
        elif record["status"] == "ok":
            click.echo(printable(f"ok     {record['file']}: '{record['source_prompt']}' -> "
                                 f"'{record['target_prompt']}'"))
        else:
            click.echo(printable(f"error  {record['file']}: {record['error']}"))
