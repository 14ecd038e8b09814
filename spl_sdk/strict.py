"""The strict pydantic base every options model and configuration shares (a leaf module).

Unknown fields, non-finite numbers (also 'Infinity' in a JSON file) and booleans where
numbers belong are refused by name.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def reject_bool_for_number(model: type[BaseModel], name: str | None, value: Any) -> Any:
    """``value`` unchanged, or ValueError when it is a bool for an int/float field (lax pydantic reads True as 1)."""
    field = model.model_fields.get(name or "")
    if field is None or not isinstance(value, bool | dict):
        return value
    numbers = (int, float, int | None, float | None)
    if isinstance(value, bool) and field.annotation in numbers:
        raise ValueError("a number is expected, not a boolean")
    if isinstance(value, dict) and typing.get_args(field.annotation)[1:] in ((int,), (float,)) \
            and any(isinstance(v, bool) for v in value.values()):
        raise ValueError("every value must be a number, not a boolean")
    return value


class ComponentOptions(BaseModel):
    """Base of a component's ``Options`` model: unknown fields, non-finite numbers and booleans for numbers are refused."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        return reject_bool_for_number(cls, info.field_name, value)
