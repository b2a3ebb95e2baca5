"""The method registry: a trainer's name -> everything that defines it, declared in one place.

Each method module of :mod:`clipprompt.methods` declares one :class:`Method` and registers it
(:func:`register`); importing :mod:`clipprompt.methods` registers them all, in the order of
:data:`clipprompt.catalog.TRAINERS`. Everything that lists or builds methods reads this registry:
the yacs defaults (``clipprompt/config.py``), the Dassl trainers (``trainers/__init__.py`` makes
one per method), ``train.py``'s name check, the result tables' order and ``tools/bench.py``.
Like timm's model registry, it is plain Python: no Dassl.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from clipprompt.errors import UserError

_METHODS: dict = {}


@dataclass(frozen=True)
class BuildContext:
    """What building a model needs besides the backbone, the class names and the options.

    ``templates(entries)`` expands template entries ("dataset", "promptsrc_ensemble", ...) for the
    run's dataset (:func:`clipprompt.prompts.templates.expand_templates`); ``max_epoch`` is the
    schedule's length (PromptSRC's aggregation weights depend on it).
    """

    templates: Callable = None
    max_epoch: int = 1


@dataclass(frozen=True)
class Method:
    """One trainer: its name, its options, how its model is built, and its published settings.

    * ``name``: the trainer name (``--trainer``, ``TRAINER.NAME``, results.json).
    * ``config_key``: its options live under ``cfg.TRAINER.<config_key>`` (two methods may share one).
    * ``options``: an :class:`~clipprompt.methods.options.Options` dataclass, every default once.
    * ``build(backbone, classnames, options, context)``: the prompt model (a ``PromptCLIP``).
    * ``summary``: one line for docs and ``--help``.
    * ``published``: the options of its paper's base-to-new ViT-B/16 setting where they differ from
      the defaults (e.g. CoOp's 4 tokens from "a photo of a"); ``published_options()`` applies them.
    * ``trains``: False for zero-shot CLIP (evaluated, never trained).
    """

    name: str
    config_key: str
    options: type
    build: Callable
    summary: str
    published: dict = field(default_factory=dict)
    trains: bool = True

    def options_from(self, cfg):
        """The run's options, read from the yacs config and validated (one-line UserError)."""
        return self.options.from_node(cfg.TRAINER[self.config_key]).validate(f"TRAINER.{self.config_key}.")

    def published_options(self, **overrides):
        """The options of the published setting, with ``overrides``."""
        return self.options(**{**self.published, **overrides}).validate(f"TRAINER.{self.config_key}.")

    def prompt_depths(self, cfg):
        """``[(full config key, tower, depth)]`` for the run's options (checked by train.py)."""
        options = self.options.from_node(cfg.TRAINER[self.config_key])
        return [(f"TRAINER.{self.config_key}.{key}", tower, depth) for key, tower, depth in options.prompt_depths()]


def register(method: Method) -> Method:
    if method.name in _METHODS:
        raise ValueError(f"method {method.name} is registered twice")
    _METHODS[method.name] = method
    return method


def methods() -> dict:
    """``{name: Method}`` in registration order."""
    return dict(_METHODS)


def method_names() -> tuple:
    return tuple(_METHODS)


def get_method(name: str) -> Method:
    try:
        return _METHODS[name]
    except KeyError:
        raise UserError(f"unknown method {name!r}; known: {', '.join(_METHODS)}") from None
