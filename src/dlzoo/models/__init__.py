"""Registered models: `dlzoo.models.create(name, num_classes=..., in_channels=...)` and `list_models()`.

Each family lives in its own module and registers itself with `@register_model`; every module of this package is
imported here, so a new family needs no edit elsewhere.
"""

import importlib
import pkgutil

from dlzoo.models.registry import check_arguments, check_kind, create, list_models, model_entry, register_model

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("registry", "layers"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["check_arguments", "check_kind", "create", "list_models", "model_entry", "register_model"]
