"""What ``python -m tools.bench`` (tools/bench.py) measures: a CLIP with random weights, each trainer's
model on it, and one measurement of a training step and of evaluation (``measure``).

``ARCHS``: the OpenAI-layout architectures by name; ``VARIANTS``: what ``build_model`` builds, each
a method of the registry at its published settings (depths clamped to the chosen architecture by
``clamp_depths``). ``measure`` returns one row (a dict) for the command's tables.
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
# What the bench builds: its name -> (the registry's method, options over the method's published ones).
# The published settings are the methods' own (clipprompt/methods/<method>.py): MaPLe 2 tokens, depth 9,
# coupled; PromptSRC 4+4 tokens, depth 9+9, its loss weights and GPA. IVLP is PromptSRC's prompts with
# cross-entropy only; DualPromptMI-ivlp / -maple put DualPromptMI's terms on IVLP's / MaPLe's prompts;
# DualPromptMI-promptsrc on PromptSRC (its terms and GPA), as its config runs it: the view MI off.
VARIANTS = {
    "CoOp": ("CoOp", {}),
    "CoCoOp": ("CoCoOp", {}),
    "DualPromptMI": ("DualPromptMI", {}),
    "MaPLe": ("MaPLe", {}),
    "IVLP": ("PromptSRC", {"text_loss_weight": 0.0, "image_loss_weight": 0.0, "kl_loss_weight": 0.0, "gpa": False}),
    "PromptSRC": ("PromptSRC", {}),
    "DualPromptMI-ivlp": ("DualPromptMI", {"prompt_learner": "ivlp"}),
    "DualPromptMI-maple": ("DualPromptMI", {"prompt_learner": "maple", "n_ctx": 2}),
    "DualPromptMI-promptsrc": ("DualPromptMI", {"prompt_learner": "promptsrc", "mi_weight": 0.0}),
}
TRAINERS = tuple(VARIANTS)
HAND_TEMPLATE = "a photo of a {}."  # the bench's "dataset" template (hand views encode once, outside the timing)
GPA_EPOCHS = 20  # PromptSRC's published schedule: the aggregation weights need its length
PRECISIONS = ("fp32", "fp16", "amp")


def build_clip(arch, device, precision="fp32", backbone=""):
    import torch

    from clipprompt.clip.openai_clip import import_clip

    CLIP, convert_weights = import_clip().model.CLIP, import_clip().model.convert_weights

    if backbone:  # open_clip:<arch>: open_clip's own model at its shapes, random weights
        from clipprompt.clip.loader import load_clip

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


def clamp_depths(trainer, options, backbone):
    """``options`` with every prompt depth clamped to its tower's blocks (a coupled depth: both towers');
    returns (options, note), note "" when nothing was clamped."""
    import dataclasses

    blocks = {"text": len(backbone.transformer.resblocks), "image": len(backbone.visual.transformer.resblocks)}
    limits = {}  # yacs key -> (first tower, depth, limit over every tower it sets)
    for key, tower, depth in options.prompt_depths():
        first, _, limit = limits.get(key, (tower, depth, blocks[tower]))
        limits[key] = (first, depth, min(limit, blocks[tower]))
    fields, clamped = options.keys(), {}
    notes = []
    for key, (tower, depth, limit) in limits.items():
        if depth > limit:
            clamped[fields[key].name] = limit
            notes.append(f"{'vision' if tower == 'image' else tower} depth {depth} -> {limit}")
    note = f"{trainer}: prompt {', '.join(notes)} (the arch's blocks)" if notes else ""
    return dataclasses.replace(options, **clamped), note


def build_model(trainer, clip_model, classnames):
    """(model, its options, clamping note): ``VARIANTS[trainer]`` built through the method registry."""
    from clipprompt.clip.backbone import as_backbone
    from clipprompt.methods import BuildContext, get_method
    from clipprompt.prompts.templates import expand_templates

    method_name, overrides = VARIANTS[trainer]
    method = get_method(method_name)
    backbone = as_backbone(clip_model)
    options, note = clamp_depths(trainer, method.published_options(**overrides), backbone)
    context = BuildContext(templates=lambda entries, role: expand_templates(entries, HAND_TEMPLATE),
                           max_epoch=GPA_EPOCHS)
    return method.build(backbone, classnames, options, context), options, note


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
    from clipprompt.prompts.soft import class_name_length

    digits = len(str(num_classes - 1))  # one BPE token per digit: "x x x 0 4 2"
    names = [" ".join(["x"] * (name_tokens - digits) + list(f"{i:0{digits}d}")) for i in range(num_classes)]
    if name_tokens < digits or any(class_name_length(n) != name_tokens for n in names):
        sys.exit(f"error: --name-tokens {name_tokens} is too short for {num_classes} classes")
    return names


def measure(trainer, arch, num_classes, batch, steps, device_name, full_context=False, chunk=0,
            evaluate=True, precision="fp32", name_tokens=0, backbone=""):
    import contextlib
    import dataclasses
    import types

    import torch

    device = torch.device(device_name)
    clip_model = build_clip(arch, device, precision, backbone)
    classnames = class_names(num_classes, name_tokens)
    model, options, note = build_model(trainer, clip_model, classnames)
    model = model.to(device)
    model.text_encoder.full_context = full_context
    model.text_encoder.chunk_size = chunk
    height, width = model.backbone.image_size
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, height, width, generator=g).to(device)
    labels = (torch.arange(batch) % num_classes).to(device)
    # What the trainer does before the first step (e.g. DualPromptMI's class prototypes, no graph), here
    # over the one timed batch.
    run = types.SimpleNamespace(epoch=0, start_epoch=0, max_epoch=GPA_EPOCHS, batches=lambda: [(images, labels)],
                                autocast=contextlib.nullcontext, sync_statistics=lambda: None)
    model.begin_training(run)
    model.begin_epoch(run)
    params = model.freeze_clip()
    optim = torch.optim.SGD(params, lr=1e-3)
    autocast = (lambda: torch.autocast(device.type)) if precision == "amp" else contextlib.nullcontext
    scaler = torch.amp.GradScaler(device.type) if precision == "amp" else None

    def step():
        with autocast():
            loss = model.loss(images, labels)[0]  # the trainer's step (plain cross-entropy where that is the method's)
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
            "options": dataclasses.asdict(options), "note": note, "trainable_params": sum(p.numel() for p in params)}
