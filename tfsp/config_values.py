"""Config values as task files and --set give them, converted to a field's type (int, float,
bool, str, Optional, List[...], Dict[str, ...]) or refused with a message naming what fits."""

from __future__ import annotations

import math
import typing


class ConfigError(ValueError):
    """A configuration key or value that does not fit; the message names where it came from."""


class _WrongType(Exception):
    pass


_TYPE_NAMES = {int: ("an integer", "integers", "150"), float: ("a number", "numbers", "0.5"),
               str: ("a string", "strings", '"name"'), bool: ("true or false", "booleans", "true")}
"""For error messages: (one, several, an example)."""


def _describe(hint) -> str:
    """What a value of type `hint` looks like, for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        return " or ".join([_describe(a) for a in args if a is not type(None)] + ["null"])
    if origin is list:
        _, several, example = _TYPE_NAMES[args[0]]
        return f"a list of {several}, e.g. [{example}]"
    if origin is dict:
        _, several, example = _TYPE_NAMES[args[1]]
        return f'an object of {several}, e.g. {{"name": {example}}}'
    return _TYPE_NAMES[hint][0] if hint in _TYPE_NAMES else str(hint)


def coerce(value, hint, where: str):
    """`value` as the field type `hint` (int, float, bool, str, Optional, List[...], Dict[str, ...]),
    e.g. 64 -> 64.0 for a float or "true" -> True; anything else raises ConfigError."""
    try:
        return _coerce_value(value, hint)
    except _WrongType:
        raise ConfigError(f"{where}: expected {_describe(hint)}, got {value!r}") from None


def _coerce_value(value, hint):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        return _coerce_value(value, next(a for a in args if a is not type(None)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _WrongType
        return [_coerce_value(v, args[0]) for v in value]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _WrongType
        return {k: _coerce_value(v, args[1]) for k, v in value.items()}
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
        raise _WrongType
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        if not is_number or not math.isfinite(value) or float(value) != int(value):
            raise _WrongType
        return int(value)
    if hint is float:
        if not is_number:
            raise _WrongType
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _WrongType
        return value
    return value
