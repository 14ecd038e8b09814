"""Guarded parsing of text a user controls: JSON, YAML and TOML with bounded nesting and aliases.

Every reader of such text (config files, manifests, the batch journal, PNG metadata
read by ``--config RESULT.png``, ``--option`` values) goes through :func:`loads`, so
that deep nesting, a YAML alias bomb or bytes that are not UTF-8 end in one
:class:`ParseError` sentence instead of a ``RecursionError``, a traceback or a process
whose memory grows without bound.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import yaml

from spl_sdk.errors import ConfigError

MAX_DEPTH = 32  # nesting levels; the deepest value spl-sdk writes or reads (options in metadata) has 5
MAX_YAML_NODES = 10_000  # YAML nodes once aliases are expanded; a config file has about a hundred
FORMATS = {"json": "JSON", "yaml": "YAML", "toml": "TOML"}


class ParseError(ConfigError):
    """Text that cannot be read as its format: not UTF-8, bad syntax, too deep, too many aliases."""


class TooDeepError(ParseError):
    """Text nested deeper than :data:`MAX_DEPTH` (or so deep that the parser ran out of stack)."""


def _too_deep(what: str) -> TooDeepError:
    return TooDeepError(f"{what} is nested more than {MAX_DEPTH} levels deep; flatten it.")


def decode(data: bytes, what: str, *, bom: bool = False) -> str:
    """``data`` as UTF-8 text (a leading byte-order mark dropped when ``bom``), or one ParseError."""
    try:
        return data.decode("utf-8-sig" if bom else "utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"{what} is not valid UTF-8 text (byte {exc.start}); save it as UTF-8.") from None


def read_bytes(path: str | Path, what: str) -> bytes:
    """The bytes of ``path``; a folder, a missing or an unreadable file is one ConfigError line."""
    path = Path(path)
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"{what} is a folder, not a file; give the path of a file.") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} ({exc.strerror or exc}); check the path and its "
                          f"permissions.") from None
    except ValueError:  # a NUL byte in the path
        raise ConfigError(f"cannot read {what}: its path holds a NUL byte.") from None


def read_text(path: str | Path, what: str, *, bom: bool = False) -> str:
    """The UTF-8 text of ``path`` (:func:`read_bytes` then :func:`decode`)."""
    return decode(read_bytes(path, what), what, bom=bom)


def check_depth(data: Any, what: str) -> Any:
    """``data`` itself when its lists and mappings nest at most :data:`MAX_DEPTH` deep."""
    stack = [(data, 1)]
    while stack:  # iterative: a deep value must not exhaust the stack here either
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            raise _too_deep(what)
        stack.extend((child, depth + 1) for child in children)
    return data


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader; :func:`_yaml` checks the composed node graph before constructing."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node, what: str) -> None:
    """Refuse a node graph whose aliases expand past MAX_YAML_NODES, or that contains itself.

    Aliases share nodes, so 'billion laughs' composes in a few kilobytes; its expanded
    size (memoized per node, so computed in time linear in the file) is what would
    exhaust memory later, when the value is validated, copied or written out.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            if sizes[key] > MAX_YAML_NODES:
                raise ParseError(f"{what} expands its YAML aliases (*name) past {MAX_YAML_NODES:,} "
                                 f"values; write the values out instead of nesting aliases.")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise ParseError(f"{what} holds a YAML alias that contains itself; remove the loop.")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _yaml(text: str, what: str) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, what)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def loads(text: str, fmt: str, what: str) -> Any:
    """Parse ``text`` as ``fmt`` ('json', 'yaml' or 'toml'); every failure is one ParseError.

    ``what`` names the input in the message, e.g. "config file 'c.yaml'" or
    "manifest 'm.jsonl' line 3". The result nests at most MAX_DEPTH deep.
    """
    try:
        if fmt == "json":
            data = json.loads(text)
        elif fmt == "yaml":
            data = _yaml(text, what)
        elif fmt == "toml":
            data = tomllib.loads(text)
        else:
            raise ValueError(f"unknown format {fmt!r}")
    except RecursionError:
        raise _too_deep(what) from None
    except (ValueError, yaml.YAMLError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ParseError(f"{what} is not valid {FORMATS.get(fmt, fmt)}: {detail}.") from None
    return check_depth(data, what)
