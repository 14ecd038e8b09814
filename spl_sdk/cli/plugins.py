"""``spl plugins``: list every installed plug-in component (plain table or JSON)."""

from __future__ import annotations

import json
import warnings

import click

from spl_sdk.cli.options import handle_errors
from spl_sdk.plugins import Plugins, PluginWarning, get_plugins

COLUMNS = ("name", "kind", "package", "version", "summary")


def load_plugins() -> Plugins:
    """The installed plug-ins, with load problems echoed to stderr as one-line warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)  # printed below, without the source line
        plugins = get_plugins()
        plugins.registry  # noqa: B018 - collect now, so clashing names are reported too
    for message in plugins.load_errors:
        click.echo(f"Warning: {message}", err=True)
    return plugins


def format_table(rows: list[dict], columns: tuple[str, ...] = COLUMNS) -> str:
    """A plain-text table with a header; the last column is not padded."""
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = [[c.upper() for c in columns], ["-" * w for w in widths], *cells]
    padded = [[v.ljust(w) for v, w in zip(line[:-1], widths[:-1], strict=True)] + line[-1:]
              for line in lines]
    return "\n".join("  ".join(line).rstrip() for line in padded)


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per component.")
@handle_errors
def plugins(as_json: bool) -> None:
    """List installed plug-ins: each component's name, kind, package, version and summary."""
    rows = load_plugins().listing()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        click.echo(format_table(rows))
    else:
        click.echo("No plug-in components are installed.")
