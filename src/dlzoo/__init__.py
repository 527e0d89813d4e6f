"""dlzoo: the classic PyTorch deep-learning curriculum as tested, fast, reproducible recipes.

Importing the package is cheap: heavy modules (torch, recipes) load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "UserError"]

from dlzoo.errors import UserError
