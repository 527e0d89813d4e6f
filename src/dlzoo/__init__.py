"""dlzoo: the classic PyTorch deep-learning curriculum as tested, fast, reproducible recipes.

Importing the package is cheap: heavy modules (torch, recipes) load on first use of the names below.
"""

from __future__ import annotations

import importlib
from typing import Any

from dlzoo.errors import UserError

__version__ = "0.1.0"

# Public names loaded on first use: name -> module that defines it.
_LAZY = {
    "create_model": "dlzoo.models",
    "list_models": "dlzoo.models",
    "get_recipe": "dlzoo.recipes",
    "list_recipes": "dlzoo.recipes",
    "read_digits": "dlzoo.reader",
    "train": "dlzoo.api",
    "resume": "dlzoo.api",
    "load": "dlzoo.api",
    "TrainedRun": "dlzoo.api",
}

# Subpackages reached as attributes of the package (`import dlzoo; dlzoo.reader.load_reader(...)`, as the docs
# write them): imported on first use too, since Python binds a submodule to its package only once it is imported.
_SUBMODULES = ("api", "cli", "config", "data", "engine", "metrics", "models", "reader", "recipes", "runs", "tasks",
               "vision")

__all__ = ["__version__", "UserError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        return getattr(module, "create" if name == "create_model" else name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'dlzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})
