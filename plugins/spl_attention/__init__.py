"""Built-in attention controllers: InfEdit unified attention control and Prompt-to-Prompt variants."""

from __future__ import annotations

from spl_attention.controllers import InfEditController, P2PReplaceController, P2PReweightController
from spl_sdk import hookimpl
from spl_sdk.hookspecs import Register

__all__ = ["InfEditController", "P2PReplaceController", "P2PReweightController"]


@hookimpl
def spl_register_attention_controllers(register: Register) -> None:
    """Register ``unified`` (InfEdit's attention control), ``p2p-replace`` and ``p2p-reweight``."""
    for cls in (InfEditController, P2PReplaceController, P2PReweightController):
        register(cls)
