"""Built-in edit methods: ``infedit`` (InfEdit's inversion-free three-branch sampler)."""

from __future__ import annotations

from spl_methods.infedit import InfEdit
from spl_sdk import hookimpl
from spl_sdk.hookspecs import Register

__all__ = ["InfEdit"]


@hookimpl
def spl_register_edit_methods(register: Register) -> None:
    """Register every built-in edit method."""
    register(InfEdit)
