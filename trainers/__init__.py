"""Dassl trainers; importing this package registers them in TRAINER_REGISTRY."""

from . import cocoop, coop, dualpromptmi, kgcoop, maple, prograd, promptsrc, zsclip  # noqa: F401
