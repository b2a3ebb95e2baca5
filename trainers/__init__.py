"""Dassl trainers: one ``PromptTrainer`` subclass per method of :mod:`clipprompt.methods`, registered
in Dassl's TRAINER_REGISTRY under the method's name when this package is imported."""

from dassl.engine import TRAINER_REGISTRY

from clipprompt.methods import methods

from .base import PromptTrainer


def trainer_class(method):
    """The Dassl trainer of ``method`` (a ``clipprompt.methods.Method``): its name, its method, nothing else."""
    return type(method.name, (PromptTrainer,), {"METHOD": method, "__doc__": method.summary, "__module__": __name__})


for _method in methods().values():
    TRAINER_REGISTRY.register(trainer_class(_method))
