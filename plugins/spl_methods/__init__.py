"""Built-in edit methods: ``infedit`` (InfEdit's three-branch sampler), ``flowedit`` (flow models) and
``instruct`` (instruction-edit models such as FLUX.1 Kontext)."""

from __future__ import annotations

from spl_methods.flowedit import FlowEdit
from spl_methods.infedit import InfEdit
from spl_methods.instruct import Instruct
from spl_sdk import hookimpl
from spl_sdk.hookspecs import Register

__all__ = ["FlowEdit", "InfEdit", "Instruct"]


@hookimpl
def spl_register_edit_methods(register: Register) -> None:
    """Register every built-in edit method."""
    register(InfEdit)
    register(FlowEdit)
    register(Instruct)
