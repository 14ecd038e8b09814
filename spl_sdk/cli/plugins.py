"""``spl plugins``: list every installed plug-in component (plain table or JSON)."""

from __future__ import annotations

import json
import shutil
import textwrap
import warnings

import click

from spl_sdk.cli.options import handle_errors
from spl_sdk.plugins import KIND_LABEL, ComponentInfo, Plugins, PluginWarning, get_plugins

COLUMNS = ("name", "kind", "package", "version", "summary")
# parameters (billions) of each family's full-size model, for the memory estimate: the instruction
# models as counted on the meta device (BENCHMARKS.md), the others from their published model cards
# (SD 1.5: UNet 0.86 + CLIP-L 0.12 + VAE 0.08; SDXL: UNet 2.57 + CLIP-L/G 0.82 + VAE 0.08; SD 3.5
# medium: MMDiT 2.5 + CLIP-L/G 0.81 + T5-XXL 4.76 + VAE 0.08; FLUX.1: FLUX.1 Kontext's count)
FAMILY_PARAMETERS = {"sd15": 1.07, "sdxl": 3.47, "sd3": 8.15, "flux": 16.87, "flux-kontext": 16.87,
                     "qwen-image-edit": 28.85, "flux2": 7.98}


def load_plugins() -> Plugins:
    """The installed plug-ins, with load problems echoed to stderr as one-line warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)  # printed below, without the source line
        plugins = get_plugins()
        plugins.registry  # noqa: B018 - collect now, so clashing names are reported too
    for message in plugins.load_errors:
        click.echo(f"Warning: {message}", err=True)
    return plugins


def format_table(rows: list[dict], columns: tuple[str, ...] = COLUMNS, width: int | None = None) -> str:
    """A plain-text table with a header fitting ``width`` columns (the terminal's by default).

    The last column wraps under itself; when even that leaves it under 20 characters,
    it moves to its own indented line.
    """
    width = width or shutil.get_terminal_size((100, 24)).columns
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lead = sum(w + 2 for w in widths[:-1])  # where the last column starts
    room = width - 1 - lead
    if room < 20 and "version" in columns:  # narrow: the version goes first ('spl plugins --json' has it)
        return format_table(rows, tuple(c for c in columns if c != "version"), width)
    lines = [[c.upper() for c in columns], ["-" * w for w in widths[:-1]] + ["-" * min(widths[-1], max(room, 4))]]
    out = []
    for line in [*lines, *cells]:
        head = "  ".join(v.ljust(w) for v, w in zip(line[:-1], widths[:-1], strict=True))
        if room >= 20:
            parts = textwrap.wrap(line[-1], room) or [""]
            out.append(f"{head}  {parts[0]}".rstrip())
            out += [" " * lead + p for p in parts[1:]]
        else:  # the summary on its own indented lines (no header for it)
            out.append(head.rstrip())
            if line not in lines:
                out += ["    " + p for p in textwrap.wrap(line[-1], max(width - 5, 20))]
    return "\n".join(out)


@click.command("plugins")
@click.argument("component", required=False, metavar="[NAME | KIND/NAME]")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: one object per component, its options as JSON Schema.")
@handle_errors
def plugins(component: str | None, as_json: bool) -> None:
    """List installed plug-ins: each component's name, kind, package, version and summary.

    With NAME (or KIND/NAME where a name exists in two kinds), show that
    component, the plug-in and package it comes from, and its options.
    """
    loaded = load_plugins()
    kinds = [k for k in KIND_LABEL if component in loaded.names(k)] if component and "/" not in component else []
    if len(kinds) > 1:  # one name, several kinds (a third party's name may clash): show each
        _show_each(loaded, component, kinds, as_json)
        return
    if component is not None:
        from spl_sdk.options import resolve_key

        kind, name = resolve_key(loaded, component, where="among the installed plug-ins")
        info = loaded.info(kind, name)
        if as_json:
            row = next(r for r in loaded.listing() if (r["kind"], r["name"]) == (kind, name))
            click.echo(json.dumps(row, indent=2))
        else:
            from spl_sdk.options import key_of

            click.echo(describe_component(info, key_of(loaded, kind, name)))
            if kind == "backbone":
                click.echo("\n" + describe_backbone(loaded, info.cls))
        return
    rows = loaded.listing()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        click.echo(format_table(rows))
    else:
        click.echo("No plug-in components are installed.")


def _show_each(loaded: Plugins, name: str, kinds: list[str], as_json: bool) -> None:
    """Every component called ``name``, one after the other (KIND/NAME names one of them)."""
    from spl_sdk.options import key_of

    if as_json:
        rows = [r for r in loaded.listing() if r["name"] == name and r["kind"] in kinds]
        click.echo(json.dumps(rows, indent=2))
        return
    labels = " and ".join(KIND_LABEL.get(k, k) for k in kinds)
    click.echo(f"'{name}' names {len(kinds)} components, {labels}; "
               f"{' or '.join(f'{k}/{name}' for k in kinds)} shows one.\n")
    click.echo("\n\n".join(describe_component(loaded.info(k, name), key_of(loaded, k, name)) for k in kinds))


def describe_component(info: ComponentInfo, key: str | None = None) -> str:
    """A component's kind, origin, summary and options table, as ``spl plugins NAME`` prints it."""
    label = KIND_LABEL.get(info.kind, info.kind)
    lines = [f"{info.name}: {label} from plug-in '{info.plugin}' (package {info.package} {info.version})".rstrip(),
             f"  {info.summary}", ""]
    described = info.cls.describe_options() if hasattr(info.cls, "describe_options") else []
    if not described:
        lines.append("No options.")
        return "\n".join(lines)
    lines.append(f"Options (set with --option {key or info.name}.FIELD=VALUE):")
    for o in described:
        facts = ", ".join(filter(None, [o.type, f"default {json.dumps(o.default, default=str)}", o.range]))
        lines.append(f"  {o.name}  ({facts})")
        lines += textwrap.wrap(o.description, 88, initial_indent="      ", subsequent_indent="      ")
    for profile, fields in getattr(info.cls, "profile_options", {}).items():  # unless given explicitly
        sets = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in fields.items())
        lines.append(f"--profile {profile} sets {sets} unless you give {'it' if len(fields) == 1 else 'them'}.")
    return "\n".join(lines)


def describe_backbone(plugins: Plugins, cls: type) -> str:
    """What a user needs before a first run: model, family, size, method and its sampling, memory, extra."""
    lines = [f"Default model: {cls.default_model or 'none (random weights built here, no download)'}",
             f"Family: {cls.family or 'unknown'}; default working size: {cls.default_working_size} px "
             f"(long side)", f"Default method: {cls.default_method}{_sampling(plugins, cls)}"]
    tiny = not cls.default_model and cls.name.startswith("tiny")
    billions = None if tiny else FAMILY_PARAMETERS.get(cls.family)
    if billions is not None:
        lines.append(f"Memory: about {billions:.3g} B parameters: {billions * 2 / 1.074:.3g} GiB of weights in "
                     f"16-bit (--dtype float16/bfloat16), {billions * 4 / 1.074:.3g} GiB in float32, plus "
                     f"activations that grow with the working size; --cpu-offload keeps only the running "
                     f"part on the GPU.")
    elif tiny:
        lines.append("Memory: a few MB (tiny random weights, for tests and trying things).")
    else:
        lines.append("Memory: no estimate for this family.")
    lines.append(f"Needs: pip install 'spl-sdk[{cls.extra}]'" if cls.extra else "Needs: no extra beyond spl-sdk")
    return "\n".join(lines)


def _sampling(plugins: Plugins, cls: type) -> str:
    """' (steps 15, guidance 1 / 2)': what the default method fills in on this backbone."""
    from spl_sdk.errors import SplError
    from spl_sdk.options import construct

    try:
        method = construct(plugins, "method", cls.default_method, {})
        got = method.sampling(cls)
    except (SplError, AttributeError, TypeError):  # a method that needs the loaded model to say
        return ""
    parts = [f"steps {got.steps}"] if got.steps is not None else []
    guidance = [g for g in (got.source_guidance, got.target_guidance) if g is not None]
    if guidance:
        parts.append(("source / target guidance " if len(guidance) == 2 else "guidance ")
                     + " / ".join(f"{g:g}" for g in guidance))
    return f" ({', '.join(parts)})" if parts else ""
