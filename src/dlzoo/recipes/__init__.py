"""Recipes: a task, a model, data and a default config, under one name.

Every module in this package registers its recipes on import; `get_recipe` and `list_recipes` import them all.
"""

from __future__ import annotations

import copy
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from dlzoo.config import RecipeConfig
from dlzoo.errors import unknown_name
from dlzoo.tasks.base import Task


@dataclass(frozen=True)
class Recipe:
    name: str
    task: type[Task]
    default_config: Callable[[], RecipeConfig]
    summary: str
    # The measured reference result, with the command and machine that produced it ("" until measured).
    reference: str = ""

    def config(self) -> RecipeConfig:
        config = copy.deepcopy(self.default_config())
        config.recipe = self.name
        return config


_RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    if recipe.name in _RECIPES:
        raise ValueError(f"recipe '{recipe.name}' registered twice")
    _RECIPES[recipe.name] = recipe
    return recipe


@cache
def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def get_recipe(name: str) -> Recipe:
    _discover()
    if name not in _RECIPES:
        raise unknown_name("recipe", name, _RECIPES, otherwise="`dlzoo list` shows them all")
    return _RECIPES[name]


def list_recipes() -> list[Recipe]:
    _discover()
    return [_RECIPES[name] for name in sorted(_RECIPES)]
