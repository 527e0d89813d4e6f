"""Registered models: `dlzoo.models.create(name, num_classes=..., in_channels=...)` and `list_models()`.

Each family lives in its own module; importing this package registers them all.
"""

from dlzoo.models import digits  # noqa: F401  (registers)
from dlzoo.models.registry import create, list_models, model_entry, register_model

__all__ = ["create", "list_models", "model_entry", "register_model"]
