"""Config keys this toolkit adds to Dassl's defaults (yacs; no Dassl import).

The trainers' keys come from their config dataclasses (:mod:`clipprompt.methods`).

CoOp's keys and defaults are kept as they are so that CoOp/CoCoOp config
files work unchanged.
"""

from yacs.config import CfgNode as CN

from clipprompt.methods import methods


def extend_cfg(cfg):
    cfg.CONFIG_NAME = ""  # stem of --config-file, recorded in results.json

    cfg.MODEL.BACKBONE.PATH = ""  # local CLIP file (TorchScript or OpenAI-layout state dict; open_clip: .bin/.pt/.safetensors)
    cfg.MODEL.BACKBONE.PRETRAINED = ""  # open_clip weights tag (e.g. laion2b_s34b_b88k) for NAME open_clip:<arch>; downloads
    cfg.MODEL.TEXT_CHUNK_SIZE = 0  # 0: all class prompts in one text pass; K > 0: K at a time, checkpointed (bounded memory)

    cfg.DATASET.SUBSAMPLE_CLASSES = "all"  # all, base or new
    # private: own RNG, JSON cache; coop: CoOp's images for a seed, its .pkl caches (docs/datasets.md)
    cfg.DATASET.FEWSHOT_SAMPLER = "private"
    cfg.DATASET.CUSTOM = CN()
    cfg.DATASET.CUSTOM.IMAGE_DIR = ""  # absolute, or relative to DATASET.ROOT
    cfg.DATASET.CUSTOM.SPLIT_FILE = ""  # CoOp split JSON; absolute, or relative to DATASET.ROOT
    cfg.DATASET.CUSTOM.TEMPLATE = ""  # hand-crafted prompt, default "a photo of a {}."
    cfg.DATASET.CUSTOM.ENSEMBLE_TEMPLATES = []  # its prompt ensemble ("dataset_ensemble"); [] -> TEMPLATE + CoOp's 7

    # Each method's options (clipprompt/methods/<method>.py): the keys and defaults of its
    # config dataclass, declared there once. CoOp's keys and defaults are CoOp's.
    for method in methods().values():
        if method.config_key not in cfg.TRAINER:  # ZeroshotCLIP and ZeroshotCLIP2 share one node
            cfg.TRAINER[method.config_key] = method.options.to_node()
    return cfg
