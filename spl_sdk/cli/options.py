"""Click options generated from the pydantic config, plus the shared error handling."""

from __future__ import annotations

import functools
import signal
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import click
from pydantic import BaseModel

from spl_sdk.config import field_help
from spl_sdk.errors import SplError
from spl_sdk.text import printable


def _click_type(annotation: Any) -> tuple[Any, bool]:
    """(click type, is_flag) for a pydantic field annotation."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _click_type(args[0])
    if origin is Literal:
        return click.Choice([str(a) for a in typing.get_args(annotation)]), False
    if annotation is bool:
        return bool, True
    if annotation in (int, float):
        return annotation, False
    if annotation is Path:
        return click.Path(dir_okay=False, path_type=Path), False
    return str, False


def _is_list(annotation: Any) -> bool:
    """True for list and dict fields: their flags repeat and take comma-separated parts."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    return typing.get_origin(annotation) in (list, dict)


def join_parts(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> str | None:
    """A repeatable list flag's values joined as one comma-separated text (None when not given)."""
    if not value:
        return None
    return ",".join(part.strip() for text in value for part in text.split(",") if part.strip())


def config_options(cls: type[BaseModel], fields: list[str]) -> Callable[[Callable], Callable]:
    """Decorator adding one ``--field-name`` option per config field (default None = not given).

    List fields (words, post-processors) and ``reweight`` take repeated flags and
    comma-separated parts alike: ``--mask-words-source a --mask-words-source b,c``.
    """

    def decorate(fn: Callable) -> Callable:
        for name in reversed(fields):
            field = cls.model_fields[name]
            ctype, is_flag = _click_type(field.annotation)
            flag = "--" + name.replace("_", "-")
            help_text = field_help(cls, name)
            if is_flag:
                fn = click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text)(fn)
            elif _is_list(field.annotation):
                fmt = "word=factor" if name == "reweight" else "A"
                fn = click.option(flag, name, multiple=True, callback=join_parts, metavar=f"{fmt.upper()},...",
                                  help=f"{help_text} Repeat the flag or separate with commas.")(fn)
            else:
                fn = click.option(flag, name, type=ctype, default=None, help=help_text)(fn)
        return fn

    return decorate


def alias(flag: str, dest: str, *, type: Any = None, instead: str) -> Callable[[Callable], Callable]:
    """A hidden, deprecated spelling of another flag: it fills ``dest`` and notes the new spelling."""

    def note(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            click.echo(f"Note: {flag} is deprecated; use {instead}.", err=True)
        return value

    return click.option(flag, dest, type=type, default=None, hidden=True, callback=note,
                        expose_value=True)


option_flag = click.option(
    "--option", "option_texts", multiple=True, metavar="NAME.FIELD=VALUE",
    help="Set an option of a component, e.g. --option spl.radius=3 (repeatable; KIND/NAME.FIELD=VALUE "
         "where a name exists in two kinds; VALUE is read as JSON when it parses). "
         "'spl plugins NAME' lists a component's options.")

quiet_flag = click.option("--quiet", "-q", is_flag=True, default=False,
                          help="No progress on stderr (a bar per phase on a terminal, else one line per phase).")


def handle_errors(fn: Callable) -> Callable:
    """Turn SplError (and Ctrl-C) into a one-line message and a non-zero exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SplError as exc:
            click.echo(f"Error: {printable(exc)}", err=True)
            sys.exit(1)
        except RecursionError:  # a last guard: inputs are parsed through spl_sdk.parsing, which bounds depth
            click.echo("Error: an input is nested too deeply to read; flatten it.", err=True)
            sys.exit(1)
        except MemoryError:  # anywhere the commands did not guard with the image size
            click.echo("Error: ran out of memory; downscale the image, close other programs, or "
                       "use a machine with more memory.", err=True)
            sys.exit(1)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (spl_sdk.cli.signals)
            signum = getattr(exc, "signum", signal.SIGINT)
            what = "Interrupted" if signum == signal.SIGINT else f"Stopped by {signal.Signals(signum).name}"
            click.echo(f"{what}; no unfinished output was written.", err=True)
            sys.exit(128 + signum)

    return wrapper
