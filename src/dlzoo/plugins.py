"""Models (and recipes) of your own on the command line: `DLZOO_PLUGINS=my_models.py dlzoo train digits
model.name=my-net`.

A model registered in Python (`@register_model("my-net")`) exists only in the process that ran the registration.
The `dlzoo` command first imports what DLZOO_PLUGINS names, comma-separated: Python files (`my_models.py`) or
importable modules (`my_package.models`), so that it can train, evaluate, predict with, export and serve runs of
those models, as it does runs of its own.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from dlzoo.errors import UserError

ENV = "DLZOO_PLUGINS"
_imported: set[str] = set()  # once per process: a second import would register its models again


def import_plugins(environ: Mapping[str, str] = os.environ) -> list[str]:
    """Import every plugin DLZOO_PLUGINS names (not yet imported by this process); return their names."""
    names = [part.strip() for part in environ.get(ENV, "").split(",") if part.strip()]
    for name in names:
        if name in _imported:
            continue
        if not name.endswith(".py") and not _MODULE_NAME.fullmatch(name):
            # A path to a file that is not Python (`../models.txt`) or a leading dot: import_module failed on it
            # with a TypeError about relative imports, or read the path's dots as packages.
            raise UserError(f"{ENV} names {name}, which is neither a Python file (.py) nor a module name (such as "
                            f"my_package.models)")
        try:
            _import_file(Path(name)) if name.endswith(".py") else importlib.import_module(name)
        except ImportError as error:  # the plugin's own other errors are bugs in it: their traceback is the news
            there = f" (the file {name} here is not a .py file)" if Path(name).is_file() else ""  # `models.txt`
            raise UserError(f"{ENV} names {name}, which cannot be imported: {error}{there}") from None
        _imported.add(name)
    return names


# A module's dotted name (`my_package.models`): Python identifiers joined by dots.
_MODULE_NAME = re.compile(r"[^\W\d]\w*(\.[^\W\d]\w*)*")


def _import_file(path: Path) -> None:
    if not path.is_file():
        raise UserError(f"{ENV} names {path}, which is not a file")
    spec = importlib.util.spec_from_file_location(f"dlzoo_plugin_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise UserError(f"{ENV} names {path}, which Python cannot import")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would: dataclasses and pickling look the module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
