"""Kinds and component names that 0.2.0 renamed, so each kind and component has one name.

The old names keep working wherever a name is read (flags, config files, batch rows,
``--config RESULT.png``, options keys, :class:`spl_sdk.plugins.Plugins` lookups) and are
written as the new ones, so a result records only today's names. A leaf module.
"""

from __future__ import annotations

# kind ids that differed from their flags (--mask-extractor, --post-processors)
OLD_KINDS: dict[str, str] = {"mask": "mask-extractor", "postprocess": "post-processor"}
# (kind, old name) -> new name: the attention controller shared 'infedit' with the edit method;
# backbone names all read tiny-random-FAMILY / random-FAMILY
OLD_NAMES: dict[tuple[str, str], str] = {
    ("attention", "infedit"): "unified",
    ("backbone", "tiny-random"): "tiny-random-sd15",
    ("backbone", "sd15-random"): "random-sd15",
    ("backbone", "sdxl-random"): "random-sdxl",
}
# old names that were unique across kinds, so a bare options key NAME meant that component
_BARE = {old: new for (kind, old), new in OLD_NAMES.items() if kind == "backbone"}


def current_kind(kind: str) -> str:
    """Today's id of a kind (``mask`` -> ``mask-extractor``)."""
    return OLD_KINDS.get(kind, kind)


def current_name(kind: str, name: str) -> str:
    """Today's name of a component of ``kind`` (``tiny-random`` -> ``tiny-random-sd15``)."""
    return OLD_NAMES.get((current_kind(kind), name), name)


def current_key(key: str) -> str:
    """Today's spelling of an options key ``NAME`` or ``KIND/NAME``.

    ``attention/infedit`` becomes ``attention/unified``, ``mask/file`` ``mask-extractor/file``.
    """
    kind, slash, name = key.rpartition("/")
    if not slash:
        return _BARE.get(key, key)
    kind = current_kind(kind)
    return f"{kind}/{OLD_NAMES.get((kind, name), name)}"
