"""The common part of every component kind: a registry name and a summary."""

from __future__ import annotations

from abc import ABC
from typing import ClassVar


class Component(ABC):  # noqa: B024 - abstract through its subclasses
    """Common part of every component: a registry name and a one-line summary."""

    name: ClassVar[str] = ""

    @classmethod
    def summary(cls) -> str:
        """First line of the class docstring, shown by ``spl plugins`` and the app."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
