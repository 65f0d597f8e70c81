"""The base of every recipe table: unknown keys refused, TOML's true/false never taken for a number."""

from __future__ import annotations

import difflib
import typing

from pydantic import BaseModel, ConfigDict, field_validator


def _numeric(annotation) -> bool:
    """An int or float field (Optional too), where TOML's true/false must not pass as 1/0."""
    if annotation in (int, float):
        return True
    return typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and any(
        a in (int, float) for a in typing.get_args(annotation))


def known_names(value: list[str], known, what: str) -> list[str]:
    """`value` when every name is in `known`; else a ValueError naming the first stranger, with the closest."""
    for name in value:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; valid: {', '.join(known)}"
            raise ValueError(f"unknown {what} '{name}'{hint}")
    return value


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value, info):
        if isinstance(value, bool) and _numeric(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"expected a number, got {str(value).lower()}")
        return value
