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

    # Deep vision-language prompts (clipprompt/prompts/deep.py). Defaults: each paper's published
    # base-to-new ViT-B/16 setting (docs/methods.md).
    m = cfg.TRAINER.MAPLE = CN()
    m.N_CTX = 2  # learnt tokens per layer (both towers): the first N_CTX tokens of CTX_INIT
    m.CTX_INIT = "a photo of a"  # the rest of the phrase stays fixed text ("of a")
    m.PROMPT_DEPTH = 9  # layers with prompts, the input layer included (1 = shallow)
    m.PREC = "fp16"

    r = cfg.TRAINER.PROMPTSRC = CN()
    r.N_CTX_TEXT = 4
    r.CTX_INIT = "a photo of a"
    r.PROMPT_DEPTH_TEXT = 9
    r.N_CTX_VISION = 4  # 0: no vision prompts (the image tower stays frozen CLIP's)
    r.PROMPT_DEPTH_VISION = 9
    r.TEXT_LOSS_WEIGHT = 25.0  # L1 between prompted and frozen (ensemble) text features
    r.IMAGE_LOSS_WEIGHT = 10.0  # L1 between prompted and frozen image features
    r.KL_LOSS_WEIGHT = 1.0  # KL(zero-shot || prompted) on the logits
    r.GPA = True  # Gaussian prompt aggregation over epochs
    r.GPA_MEAN = 15.0  # in epochs (1-based)
    r.GPA_STD = 1.0
    r.HAND_TEMPLATES = ["promptsrc_ensemble"]  # the frozen text teacher's prompts (PromptSRC's 60 ImageNet templates)
    r.PREC = "fp16"

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
    d.AUG.PROTOTYPES = "precomputed"  # precomputed (a pass over the train set; every epoch with vision prompts) or running
    d.AUG.FEED_VIEW_MI = False  # posterior MI also over the mixed features (posterior mode only)
    d.PROMPT_LEARNER = "coop"  # coop (CoOp's context), ivlp or maple (deep prompts in both towers)
    d.DEEP = CN()  # ivlp / maple only (maple: TEXT_DEPTH for both towers, N_CTX tokens)
    d.DEEP.TEXT_DEPTH = 9  # text layers with prompts, the input layer included
    d.DEEP.VISION_N_CTX = 4  # ivlp: vision prompt tokens (0: none)
    d.DEEP.VISION_DEPTH = 9  # ivlp: image layers with prompts
    d.VISION_MI = CN()
    d.VISION_MI.WEIGHT = 0.0  # MI between prompted and frozen image features (needs vision prompts)
    return cfg
