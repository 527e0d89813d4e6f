"""A timm-style model registry: `@register_model` on a factory, `create(name, ...)`, `list_models()`."""

from __future__ import annotations

import inspect
import numbers
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from dlzoo.config import coerce
from dlzoo.errors import UserError, unknown_name


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    summary: str
    # The input the model is meant for, e.g. (1, 28, 28): used to count parameters and by `dlzoo models`.
    input_size: tuple[int, int, int]
    # What it does, which the task that trains it must expect: "classifier", "vae", "gan-generator", ...
    kind: str = "classifier"


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, input_size: tuple[int, int, int] = (1, 28, 28),
                   kind: str = "classifier") -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register the decorated factory as model `name`, for `create(name, ...)` and a config's `model.name`. The
    factory takes `num_classes` and `in_channels` (set from the data) and its own keyword arguments (`model.args`);
    the first line of its docstring is what `dlzoo models` prints. `input_size` is (channels, height, width) of
    the input it is meant for, `kind` what it does ("classifier", "vae", ...: the task that trains it must expect
    that kind)."""
    if not isinstance(name, str):  # `@register_model` without its call would register nothing, silently
        raise TypeError(f"register_model takes the model's name: @register_model(\"my-net\"), not {name!r}")

    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        parameters = inspect.signature(factory).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        missing = [key for key in ("num_classes", "in_channels") if key not in parameters and not takes_any]
        if missing:  # else `create` would fail on every call, blaming the user's model.args
            raise TypeError(f"model '{name}': its factory must take {' and '.join(missing)} (set from the data)")
        previous = _MODELS.get(name)
        if previous is not None and not _same_function(previous.factory, factory):
            # Replacing another model (a built-in one) would change what its recipes and runs build; the same
            # function defined again (a notebook cell run twice, a plugin file imported also under its own name)
            # replaces its earlier self.
            raise ValueError(f"model '{name}' is already registered (by {'.'.join(_origin(previous.factory))}); "
                             f"choose another name")
        doc = (inspect.getdoc(factory) or "").split("\n")[0]
        _MODELS[name] = ModelEntry(name, factory, doc, input_size, kind)
        return factory

    return decorate


def _origin(factory: Callable[..., nn.Module]) -> tuple[str, str]:
    return getattr(factory, "__module__", "?") or "?", getattr(factory, "__qualname__", repr(factory))


def _same_function(one: Callable[..., nn.Module], other: Callable[..., nn.Module]) -> bool:
    """The same function defined again: the same name in the same module (a notebook's cells all run in
    `__main__`) or in the same file (DLZOO_PLUGINS imports a file under a module name of its own)."""
    if _origin(one)[1] != _origin(other)[1]:
        return False
    if _origin(one)[0] == _origin(other)[0]:
        return True
    file = _source_file(one)
    return file is not None and file == _source_file(other)


def _source_file(factory: Callable[..., nn.Module]) -> str | None:
    try:
        return str(Path(inspect.getfile(factory)).resolve())
    except (TypeError, OSError):  # a builtin, or a function made without a file
        return None


def model_entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        raise UserError(f"{unknown_name('model', name, _MODELS)} (a model of your own: name the file or module that "
                        f"registers it in DLZOO_PLUGINS)")
    return _MODELS[name]


def check_kind(name: str, kind: str, section: str, recipe: str) -> None:
    """A model that does what the recipe's task trains (a classifier recipe cannot train a VAE's decoder)."""
    entry = model_entry(name)
    if entry.kind != kind:
        fitting = ", ".join(other.name for other in list_models() if other.kind == kind)
        raise UserError(f"{section}.name={name} is a {entry.kind} model; {recipe} trains a {kind}: {fitting}")


def check_arguments(name: str, args: dict[str, Any], section: str = "model",
                    set_by: dict[str, str] | None = None) -> None:
    """A config's model (`{section}.name`, `{section}.args`) checked against its factory's signature, so that a
    misspelt argument or a wrong value is a one-line mistake before any data is read; values are converted to the
    factory's annotated types in place. The classes and channels come from the data; `set_by` names the keys a
    task sets other arguments from (`Task.model_args_set_by`)."""
    entry = model_entry(name)
    set_elsewhere = {"num_classes": "the data", "in_channels": "the data", **(set_by or {})}
    taken = sorted(set(args) & set(set_elsewhere))
    if taken:
        raise UserError(f"{section}.args.{taken[0]}: set by {set_elsewhere[taken[0]]}, not by the model's arguments")
    try:
        inspect.signature(entry.factory).bind_partial(**args)
    except TypeError as error:
        raise UserError(f"model '{name}': {error} ({section}.args are its keyword arguments)") from None
    hints = typing.get_type_hints(entry.factory)
    for key, value in args.items():  # converted to the factory's types as config keys are (width=abc refused)
        if key in hints:
            args[key] = coerce(value, hints[key], f"{section}.args.{key}")


def create(name: str, num_classes: int = 10, in_channels: int = 1, **kwargs: Any) -> nn.Module:
    """Build a registered model by name, e.g. `create("resnet18", num_classes=10, in_channels=1)`."""
    entry = model_entry(name)
    for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        # Torch would build a layer of size 0 with a warning, and fail on a negative or non-integer one from deep
        # inside the factory; from the command line these come from the data, from Python from the caller.
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise UserError(f"model '{name}': {key} must be an integer >= 1, got {value!r}")
    try:  # the arguments checked against the factory's signature: a TypeError inside it is a bug, not the user's
        inspect.signature(entry.factory).bind(num_classes=num_classes, in_channels=in_channels, **kwargs)
    except TypeError as error:
        raise UserError(f"model '{name}': {error} (model.args are its keyword arguments)") from None
    try:
        return entry.factory(num_classes=num_classes, in_channels=in_channels, **kwargs)
    except ValueError as error:  # a factory refusing a value of its arguments (a width of 0, an odd height)
        raise UserError(f"model '{name}': {error}") from None


def list_models() -> list[ModelEntry]:
    return [_MODELS[name] for name in sorted(_MODELS)]
