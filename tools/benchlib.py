"""What ``python -m tools.bench`` (tools/bench.py) measures: a CLIP with random weights, each trainer's
model on it, and one measurement of a training step and of evaluation (``measure``).

``ARCHS``: the OpenAI-layout architectures by name; ``DEEP``: the deep-prompt trainers' published
settings (depths clamped to the chosen architecture by ``deep_settings``); ``TRAINERS``: what
``build_model`` builds. ``measure`` returns one row (a dict) for the command's tables.
"""

import resource
import statistics
import sys
import time

ARCHS = {
    # embed_dim, image_resolution, vision_layers, vision_width, patch, text_width, text_layers
    "tiny": (64, 32, 2, 64, 16, 64, 2),  # 2 blocks: deep prompts get one layer beyond the input
    "small": (256, 64, 4, 256, 16, 256, 4),
    "vit_b32": (512, 224, 12, 768, 32, 512, 12),
    "vit_b16": (512, 224, 12, 768, 16, 512, 12),
}
DEFAULT_TRAINERS = ("CoOp", "CoCoOp", "DualPromptMI")
# Deep prompts at the published settings. MaPLe: configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml
# (2 tokens, depth 9, vision prompts coupled to the text ones); IVLP: PromptSRC's prompts
# (configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml: 4+4 tokens, depth 9+9) with CE only.
DEEP = {
    "MaPLe": {"n_ctx": 2, "text_depth": 9, "coupled": True},
    "IVLP": {"n_ctx": 4, "text_depth": 9, "vision_n_ctx": 4, "vision_depth": 9, "coupled": False},
}
DEEP["PromptSRC"] = DEEP["DualPromptMI-ivlp"] = DEEP["IVLP"]
DEEP["DualPromptMI-maple"] = DEEP["MaPLe"]
# PromptSRC's published loss weights (L1 text, L1 image, KL) and GPA (20 epochs, mean 15, std 1)
PROMPTSRC = {"text_weight": 25.0, "image_weight": 10.0, "kl_weight": 1.0, "gpa": (20, 15.0, 1.0)}
TRAINERS = DEFAULT_TRAINERS + ("MaPLe", "IVLP", "PromptSRC", "DualPromptMI-ivlp", "DualPromptMI-maple")
PRECISIONS = ("fp32", "fp16", "amp")


def build_clip(arch, device, precision="fp32", backbone=""):
    import torch

    from clipprompt.openai_clip import import_clip

    CLIP, convert_weights = import_clip().model.CLIP, import_clip().model.convert_weights

    if backbone:  # open_clip:<arch>: open_clip's own model at its shapes, random weights
        from clipprompt.clip_loader import load_clip

        torch.manual_seed(0)
        return load_clip(backbone, precision=precision, random_weights=True).to(device)
    embed, res, vlayers, vwidth, patch, twidth, tlayers = ARCHS[arch]
    torch.manual_seed(0)
    model = CLIP(embed, res, vlayers, vwidth, patch, 77, 49408, twidth, twidth // 64, tlayers)
    model = model.float().eval()
    if precision == "fp16":
        convert_weights(model)  # what load_clip(precision="fp16") does
    model = model.to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def deep_settings(trainer, clip_model):
    """``DEEP[trainer]`` with each depth clamped to its tower's blocks (MaPLe's coupled depth: both
    towers'); returns (settings, note), note "" when nothing was clamped."""
    from clipprompt.backbone import as_backbone

    backbone = as_backbone(clip_model)
    blocks = {"text_depth": len(backbone.transformer.resblocks),
              "vision_depth": len(backbone.visual.transformer.resblocks)}
    settings = dict(DEEP[trainer])
    if settings["coupled"]:
        blocks["text_depth"] = min(blocks.values())
    clamped = []
    for key, limit in blocks.items():
        if key in settings and settings[key] > limit:
            clamped.append(f"{key.split('_')[0]} depth {settings[key]} -> {limit}")
            settings[key] = limit
    note = f"{trainer}: prompt {', '.join(clamped)} (the arch's blocks)" if clamped else ""
    return settings, note


def build_model(trainer, clip_model, classnames):
    """(model, deep settings or None, clamping note)."""
    from clipprompt.dualprompt import DualPromptMICLIP, DualPromptMIConfig
    from clipprompt.models import CoCoOpCLIP, CoOpCLIP, DeepPromptCLIP
    from clipprompt.promptsrc import PromptSRCCLIP
    from clipprompt.templates import PROMPTSRC_TEMPLATES

    if trainer == "CoOp":
        return CoOpCLIP(clip_model, classnames, n_ctx=4, ctx_init="a photo of a"), None, ""
    if trainer == "CoCoOp":
        return CoCoOpCLIP(clip_model, classnames, n_ctx=4, ctx_init="a photo of a"), None, ""
    if trainer == "DualPromptMI":
        return DualPromptMICLIP(clip_model, classnames, ["a photo of a {}."], DualPromptMIConfig()), None, ""
    deep, note = deep_settings(trainer, clip_model)
    prompt = {k: v for k, v in deep.items() if k != "coupled"}
    if trainer in ("MaPLe", "IVLP"):
        model = DeepPromptCLIP(clip_model, classnames, ctx_init="a photo of a", coupled=deep["coupled"], **prompt)
    elif trainer == "PromptSRC":  # the frozen teacher: PromptSRC's 60 templates, encoded once here
        model = PromptSRCCLIP(clip_model, classnames, PROMPTSRC_TEMPLATES, ctx_init="a photo of a", **PROMPTSRC,
                              **prompt)
    else:  # DualPromptMI-ivlp / -maple: DualPromptMI's defaults on IVLP's / MaPLe's prompts
        config = DualPromptMIConfig(prompt_learner=trainer.split("-")[1], n_ctx=deep["n_ctx"],
                                    deep_text_depth=deep["text_depth"],
                                    deep_vision_n_ctx=deep.get("vision_n_ctx", DualPromptMIConfig.deep_vision_n_ctx),
                                    deep_vision_depth=deep.get("vision_depth", DualPromptMIConfig.deep_vision_depth))
        model = DualPromptMICLIP(clip_model, classnames, ["a photo of a {}."], config)
    return model, deep, note


def current_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def class_names(num_classes, name_tokens=0):
    """"class <i>", or names of exactly ``name_tokens`` BPE tokens (long names set the text length L)."""
    if not name_tokens:
        return [f"class {i}" for i in range(num_classes)]
    from clipprompt.prompts import class_name_length

    digits = len(str(num_classes - 1))  # one BPE token per digit: "x x x 0 4 2"
    names = [" ".join(["x"] * (name_tokens - digits) + list(f"{i:0{digits}d}")) for i in range(num_classes)]
    if name_tokens < digits or any(class_name_length(n) != name_tokens for n in names):
        sys.exit(f"error: --name-tokens {name_tokens} is too short for {num_classes} classes")
    return names


def measure(trainer, arch, num_classes, batch, steps, device_name, full_context=False, chunk=0,
            evaluate=True, precision="fp32", name_tokens=0, backbone=""):
    import contextlib

    import torch
    import torch.nn.functional as F

    device = torch.device(device_name)
    clip_model = build_clip(arch, device, precision, backbone)
    classnames = class_names(num_classes, name_tokens)
    model, deep, note = build_model(trainer, clip_model, classnames)
    model = model.to(device)
    model.text_encoder.full_context = full_context
    model.text_encoder.chunk_size = chunk
    from clipprompt.backbone import as_backbone

    height, width = as_backbone(clip_model).image_size
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, height, width, generator=g).to(device)
    labels = (torch.arange(batch) % num_classes).to(device)
    uses_loss = trainer.startswith("DualPromptMI") or trainer == "PromptSRC"  # model.loss: the trainer's step
    if trainer.startswith("DualPromptMI"):  # the class prototypes, as the trainer computes them (no graph)
        with torch.no_grad():
            model.observe(model.encode_image(images), labels)
    params = [p for n, p in model.named_parameters() if not n.startswith(("image_encoder.", "text_encoder.", "logit_scale"))]
    optim = torch.optim.SGD(params, lr=1e-3)
    autocast = (lambda: torch.autocast(device.type)) if precision == "amp" else contextlib.nullcontext
    scaler = torch.amp.GradScaler(device.type) if precision == "amp" else None

    def step():
        with autocast():
            if uses_loss:
                loss = model.loss(images, labels)[0]
            else:
                loss = F.cross_entropy(model(images), labels)
        optim.zero_grad()
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optim)
            scaler.update()
        else:
            loss.backward()
            optim.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    # CPU: this process's CPU time. With one thread it is the step's cost, whatever else the
    # machine runs (wall time on a shared CPU is not); a GPU is timed by the wall clock.
    clock = time.perf_counter if device.type == "cuda" else time.process_time

    weights_mb = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20
    params_m = sum(t.numel() for t in {id(t): t for t in model.state_dict().values()}.values()) / 1e6
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before_mb = torch.cuda.memory_allocated() / 2**20
    else:
        before_mb = current_rss_mb()
    model.train()
    sync()
    start = clock()
    step()  # warm-up (the only step with --steps 0)
    sync()
    times = [clock() - start]
    if steps > 0:
        times = []
    for _ in range(steps):
        sync()
        start = clock()
        step()
        sync()
        times.append(clock() - start)
    if device.type == "cuda":
        train_peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        train_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    eval_img_per_s = None
    if evaluate:
        model.eval()
        eval_batches = max(steps, 2)
        with torch.no_grad(), autocast(), model.cached_text_features():
            model.predict(images)  # warm-up
            sync()
            start = clock()
            for _ in range(eval_batches):
                model.predict(images)
            sync()
            eval_img_per_s = eval_batches * batch / (clock() - start)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
        memory_kind = "cuda max allocated"
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        memory_kind = "peak RSS"
    step_s = statistics.median(times)
    return {"trainer": trainer, "classes": num_classes, "batch": batch, "chunk": chunk, "full_context": full_context,
            "precision": precision, "step_s": step_s, "step_s_min": min(times), "steps": len(times),
            "train_img_per_s": batch / step_s, "eval_img_per_s": eval_img_per_s, "peak_mb": peak_mb,
            "train_peak_mb": train_peak_mb, "before_step_mb": before_mb, "weights_mb": weights_mb,
            "params_m": params_m, "memory": memory_kind, "device": device_name,
            "clock": "wall" if device.type == "cuda" else "process CPU time",
            "text_positions": int(model.prompt_learner.tokenized_prompts.argmax(-1).max()) + 1,
            "deep": deep, "note": note, "trainable_params": sum(p.numel() for p in params)}
