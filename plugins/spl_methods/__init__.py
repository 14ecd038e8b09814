"""Built-in edit methods: ``infedit`` (InfEdit's three-branch sampler) and ``flowedit`` (flow models)."""

from __future__ import annotations

from spl_methods.flowedit import FlowEdit
from spl_methods.infedit import InfEdit
from spl_sdk import hookimpl
from spl_sdk.hookspecs import Register

__all__ = ["FlowEdit", "InfEdit"]


@hookimpl
def spl_register_edit_methods(register: Register) -> None:
    """Register every built-in edit method."""
    register(InfEdit)
    register(FlowEdit)
