"""The methods: one module each (model, options, :class:`Method`); importing this package registers
the ones :data:`clipprompt.catalog.TRAINERS` names, in its order. To add a method, see
docs/developing.md ("Adding a trainer").
"""

import importlib

from clipprompt.catalog import TRAINER_NAMES, TRAINERS
from clipprompt.methods.registry import BuildContext, Method, get_method, method_names, methods, register

for _module in dict.fromkeys(TRAINERS.values()):
    importlib.import_module(f"clipprompt.methods.{_module}")
if method_names() != TRAINER_NAMES:
    raise ImportError(f"clipprompt.methods registered {method_names()}, clipprompt.catalog lists {TRAINER_NAMES}")

__all__ = ["BuildContext", "Method", "TRAINER_NAMES", "get_method", "method_names", "methods", "register"]
