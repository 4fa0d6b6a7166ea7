"""Methods by name, as the TF Model Garden registers its tasks: each method module joins its
`keras.Model` subclass to the dataclass of its settings with `@register(name, settings=...)`.

The settings dataclass is what task files' method sections and --set name (beside the shared
ExperimentConfig fields, whose names it may not take): its optimizers (fields of type
OptimizerConfig, passed to the model's `compile` by name), refinement (RefineConfig fields),
tuples and loss weights, each with its default and, in a class attribute RANGES, its valid
values (tfsp.config.validate). The model class builds itself from them:

    @classmethod
    def from_settings(cls, settings, parts, **common) -> model

with `parts` (tfsp.build.MethodParts) making the networks of the task's kind and turning epochs into
updates, and `common` the arguments every method takes (spec, seed, crop_mode, name).

Adding a method is one module that registers it, imported before the task file is resolved
(tfsp.methods imports the built-in ones), and a section in tasks/<task>.json.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, NamedTuple, Optional, Tuple


class Method(NamedTuple):
    name: str
    model_class: type
    settings_class: type


_METHODS: Dict[str, Method] = {}


def register(name: str, settings: type):
    """Class decorator: the model class is method `name`, configured by the dataclass `settings`."""
    if not dataclasses.is_dataclass(settings):
        raise TypeError(f"method {name!r}: settings must be a dataclass, got {settings!r}")
    from tfsp.config import ExperimentConfig

    clash = {f.name for f in dataclasses.fields(settings)} & {f.name for f in dataclasses.fields(ExperimentConfig)}
    if clash:
        raise ValueError(f"method {name!r}: {settings.__name__} fields {sorted(clash)} have the names of "
                         "ExperimentConfig fields; task files could not tell them apart")

    def decorator(model_class):
        if not hasattr(model_class, "from_settings"):
            raise TypeError(f"method {name!r}: {model_class.__name__} has no from_settings classmethod")
        _METHODS[name] = Method(name, model_class, settings)
        return model_class

    return decorator


def _load_builtin() -> None:
    import tfsp.methods  # noqa: F401 -- its modules register the built-in methods


def get(name: str) -> Method:
    """The method registered as `name`; KeyError naming the registered ones otherwise."""
    _load_builtin()
    if name not in _METHODS:
        raise KeyError(f"unknown method {name!r}; registered: {list(names())}")
    return _METHODS[name]


def settings_class(name: str) -> Optional[type]:
    """The settings dataclass of method `name`, or None if no module registered it."""
    _load_builtin()
    method = _METHODS.get(name)
    return method.settings_class if method is not None else None


def names() -> Tuple[str, ...]:
    _load_builtin()
    return tuple(_METHODS)
