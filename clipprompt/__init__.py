"""Dassl-free building blocks for prompt learning on CLIP.

Everything in this package is plain PyTorch (plus ``clip`` for the model code
and tokenizer); the Dassl trainers in ``trainers/`` are thin glue around it.
"""

__version__ = "0.1.0"
