"""The trainers this toolkit has, in their order, and the module of :mod:`clipprompt.methods` that
declares each (its model, options and :class:`~clipprompt.methods.registry.Method`).

The one list of trainer names. It imports nothing, so ``train.py --help``, ``setup.py`` and the
scripts read it without importing torch; :mod:`clipprompt.methods` imports the modules named here
and checks that they register exactly these names.
"""

TRAINERS = {
    "ZeroshotCLIP": "zeroshot",
    "ZeroshotCLIP2": "zeroshot",
    "CoOp": "coop",
    "CoCoOp": "cocoop",
    "KgCoOp": "kgcoop",
    "ProGrad": "prograd",
    "MaPLe": "maple",
    "PromptSRC": "promptsrc",
    "DualPromptMI": "dualprompt",
}
TRAINER_NAMES = tuple(TRAINERS)

if __name__ == "__main__":  # for the shell scripts: one name a line
    print("\n".join(TRAINER_NAMES))
