"""Config keys this toolkit adds to Dassl's defaults (yacs; no Dassl import).

CoOp's keys and defaults are kept as they are so that CoOp/CoCoOp config
files work unchanged.
"""

from yacs.config import CfgNode as CN


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

    cfg.TRAINER.ZEROSHOTCLIP = CN()
    cfg.TRAINER.ZEROSHOTCLIP.TEMPLATES = ["dataset"]  # see HAND_TEMPLATES below
    cfg.TRAINER.ZEROSHOTCLIP.PREC = "fp16"

    cfg.TRAINER.COOP = CN()
    cfg.TRAINER.COOP.N_CTX = 16
    cfg.TRAINER.COOP.CSC = False  # class-specific context
    cfg.TRAINER.COOP.CTX_INIT = ""  # e.g. "a photo of a" (then N_CTX = its token count)
    cfg.TRAINER.COOP.PREC = "fp16"  # fp16, fp32 or amp
    cfg.TRAINER.COOP.CLASS_TOKEN_POSITION = "end"  # end, middle or front

    cfg.TRAINER.COCOOP = CN()
    cfg.TRAINER.COCOOP.N_CTX = 16
    cfg.TRAINER.COCOOP.CTX_INIT = ""
    cfg.TRAINER.COCOOP.PREC = "fp16"

    # Peers (docs/methods.md): CoOp's prompt keys, the hand-crafted prompts
    # (entries as in DUALPROMPTMI.HAND_TEMPLATES) and each method's own keys.
    for name in ("KGCOOP", "PROGRAD"):
        p = cfg.TRAINER[name] = CN()
        p.N_CTX = 4
        p.CTX_INIT = "a photo of a"
        p.CSC = False
        p.CLASS_TOKEN_POSITION = "end"
        p.PREC = "fp16"
        p.HAND_TEMPLATES = ["dataset"]  # KgCoOp: the hand view; ProGrad: the zero-shot teacher's prompts
    cfg.TRAINER.KGCOOP.W = 8.0  # weight of 1 - mean_c cos(t_c^soft, t_c^hand); 0 = CoOp
    cfg.TRAINER.PROGRAD.LAMBDA = 1.0  # share of the conflicting component removed (1 = all of it)
    cfg.TRAINER.PROGRAD.T = 1.0  # temperature of the zero-shot KL

    d = cfg.TRAINER.DUALPROMPTMI = CN()
    d.N_CTX = 4
    d.CTX_INIT = "a photo of a"
    d.CSC = False
    d.CLASS_TOKEN_POSITION = "end"
    d.PREC = "fp16"
    # Each entry: a template with "{}", "dataset" (the dataset's hand-crafted
    # template), "dataset_ensemble" (the dataset's own prompt ensemble; without one, its template
    # and CoOp's 7 ImageNet templates) or "imagenet_ensemble" (CoOp's 7 ImageNet templates); the
    # hand view is the normalised mean over all of them (views_nce: each one a positive).
    d.HAND_TEMPLATES = ["dataset_ensemble"]  # round three's choice (dualpromptmi_templates.py)
    # Defaults: the best mean pseudo-HM of the three selection rounds on the many-class CPU benchmark
    # (configs/ablation/dualpromptmi_many.py, dualpromptmi_aug.py, dualpromptmi_templates.py;
    # docs/cpu_benchmarks.md and docs/experiments/):
    # the gaussian view term at a fixed variance (KgCoOp's term, W 8), light inter-class mixup, soft view.
    d.INFER_WEIGHT = 1.0  # w in t = normalise(w t^s + (1 - w) t^h); 1 = soft view only
    d.MI = CN()
    d.MI.WEIGHT = 8.0  # 0 turns the view MI term off
    d.MI.MODE = "gaussian"  # posterior, critic, views_nce or gaussian
    d.MI.ESTIMATOR = "infonce"  # critic bound: infonce, jsd or dv
    d.MI.TAU = 0.07  # critic temperature
    d.MI.LEARN_TAU = False  # learnable, bounded critic temperature
    d.MI.LEARN_TEMPERATURE = False  # learnable temperature of the posterior MI
    d.MI.LEARN_PROJECTION = False  # learnable critic projections (critic mode; can saturate the bound alone)
    d.MI.NCE_TAU = 0.01  # views_nce temperature: 1/100, CLIP's logit scale
    d.MI.NCE_LEARN_TAU = False  # learnable views_nce temperature, kept inside (0.005, 0.5)
    d.MI.GAUSS_VAR = 1.0  # gaussian: initial (or fixed) per-dimension variance; fixed 1.0 = KgCoOp's term
    d.MI.GAUSS_LEARN_VAR = False  # learnable per-dimension variance, kept inside GAUSS_VAR_BOUNDS
    d.MI.GAUSS_VAR_BOUNDS = [0.01, 10.0]
    d.MI.GAUSS_LEARN_MAP = False  # learnable linear map (identity-initialised) as the mean of q
    d.AUG = CN()
    d.AUG.WEIGHT = 0.25  # 0 turns the class-wise augmentation off
    d.AUG.MODE = "inter"  # intra (own-class prototype) or inter (another class, mixed targets)
    d.AUG.ALPHA = 1.0  # lambda ~ Beta(alpha, alpha)
    d.AUG.MI_WEIGHT = 1.0  # weight of the visual-text MI bound inside L_aug
    d.AUG.PROTOTYPES = "precomputed"  # precomputed (one pass over the train set) or running
    d.AUG.FEED_VIEW_MI = False  # posterior MI also over the mixed features (posterior mode only)
    return cfg
