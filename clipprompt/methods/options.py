"""Config dataclasses: each method's options and their defaults, declared once.

A field made with :func:`option` names its yacs key under ``TRAINER.<CONFIG_KEY>`` (dots for
nested nodes, e.g. ``"MI.WEIGHT"``). ``clipprompt/config.py`` builds the yacs defaults from the
dataclass (:meth:`Options.to_node`) and the trainer reads a run's values back
(:meth:`Options.from_node`), so a default is written in one place. The pattern is open_clip's
``CLIPVisionCfg``/``CLIPTextCfg``: plain dataclasses, one factory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from yacs.config import CfgNode as CN

from clipprompt.errors import UserError

PRECISIONS = ("fp16", "fp32", "amp")


def option(default, key, help=""):
    """A dataclass field with yacs key ``key``; ``help`` says what the key does (docs/configuration.md)."""
    metadata = {"key": key, "help": help}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def option_like(options, name, key):
    """``options``' field ``name`` (its default and help) under ``key``: an option one method takes over
    from another is declared once, by its owner (DualPromptMI's ``PROMPTSRC.*`` are PromptSRC's)."""
    f = options.__dataclass_fields__[name]
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    return option(default, key, f.metadata["help"])


def _yacs_value(value):
    return list(value) if isinstance(value, tuple) else value


@dataclass
class Options:
    """Options every trainer has. Subclasses add theirs with :func:`option`."""

    prec: str = option("fp16", "PREC", "fp16, fp32 or amp (fp16/amp need a GPU; a CPU runs fp32)")

    @classmethod
    def keys(cls):
        """``{yacs key: field}`` in declaration order."""
        return {f.metadata["key"]: f for f in dataclasses.fields(cls) if "key" in f.metadata}

    @classmethod
    def to_node(cls):
        """The yacs defaults of this dataclass (nested nodes for dotted keys)."""
        node, defaults = CN(), cls()
        for key, f in cls.keys().items():
            *parents, leaf = key.split(".")
            target = node
            for part in parents:
                if part not in target:
                    target[part] = CN()
                target = target[part]
            target[leaf] = _yacs_value(getattr(defaults, f.name))
        return node

    @classmethod
    def from_node(cls, node):
        """From a run's yacs node ``cfg.TRAINER.<CONFIG_KEY>`` (floats as floats, lists as the field's type)."""
        values, defaults = {}, cls()
        for key, f in cls.keys().items():
            value = node
            for part in key.split("."):
                value = value[part]
            default = getattr(defaults, f.name)
            if isinstance(default, float) and not isinstance(value, bool):
                value = float(value)
            elif isinstance(default, tuple):
                value = tuple(value)
            elif isinstance(default, list):
                value = list(value)
            values[f.name] = value
        return cls(**values)

    def validate(self, prefix=""):
        """Raise a one-line UserError naming ``prefix + KEY`` for a bad value; returns self."""
        if self.prec not in PRECISIONS:
            raise UserError(f"{prefix}PREC must be one of {', '.join(PRECISIONS)}, got {self.prec!r}")
        return self

    def check_non_negative(self, prefix, **values):
        """A one-line error for the first of ``KEY=value`` that is negative."""
        for key, value in values.items():
            if value < 0:
                raise UserError(f"{prefix}{key} must be >= 0, got {value}")

    def prompt_depths(self):
        """``[(key, "text" | "image", depth)]``: the layers of CLIP's towers these options put
        prompts into, checked against the backbone before the model is built (train.py)."""
        return []


@dataclass
class SoftPromptOptions(Options):
    """CoOp's prompt keys (KgCoOp, ProGrad and DualPromptMI share them, with their own defaults)."""

    n_ctx: int = option(16, "N_CTX", "learnt context tokens")
    ctx_init: str = option("", "CTX_INIT", 'e.g. "a photo of a" (then N_CTX = its token count)')
    csc: bool = option(False, "CSC", "class-specific context")
    class_token_position: str = option("end", "CLASS_TOKEN_POSITION", "end, middle or front")

    def prompt(self):
        """The keyword arguments of ``SoftPrompt`` these options hold."""
        return {"n_ctx": self.n_ctx, "ctx_init": self.ctx_init, "csc": self.csc,
                "class_token_position": self.class_token_position}
