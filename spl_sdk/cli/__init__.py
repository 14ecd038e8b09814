"""The ``spl`` command: subcommands are imported only when used, so ``spl --help`` stays fast."""

from __future__ import annotations

import importlib
from typing import Any

import click

from spl_sdk.version import __version__

# subcommand name -> "module:function"; each module holds one command
COMMANDS = {
    "refine": "spl_sdk.cli.refine:refine",
    "edit": "spl_sdk.cli.edit:edit",
    "harmonize": "spl_sdk.cli.harmonize:harmonize",
    "plugins": "spl_sdk.cli.plugins:plugins",
    "app": "spl_sdk.cli.app:app",
    "batch": "spl_sdk.cli.batch:batch",
    "eval": "spl_sdk.cli.eval:evaluate",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:  # a usage error quotes the value typed: never a key
            from spl_sdk.text import redact

            exc.message = redact(exc.message)
            raise


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spl")
def main(**_: Any) -> None:
    """Structure-preserving, text-driven image editing (SPL + InfEdit)."""
    from spl_sdk.cli.signals import exit_cleanly_on_signals
    from spl_sdk.cli.streams import plain_warnings, tolerant_streams
    from spl_sdk.memory import keep_freed_memory

    tolerant_streams()
    plain_warnings()
    exit_cleanly_on_signals()
    keep_freed_memory()
