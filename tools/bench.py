"""Speed and memory of one training step and of evaluation, per trainer.

    # train step and evaluation per trainer; --compare-full adds the 77-position text pass ("before")
    OMP_NUM_THREADS=1 python tools/bench.py --arch vit_b16 --classes 50 --batch 4 --steps 3 --compare-full
    # deep prompts: MaPLe, IVLP, PromptSRC and DualPromptMI over them, with the step ratios
    OMP_NUM_THREADS=1 python tools/bench.py --arch vit_b16 --classes 50 --batch 4 --steps 3 --compare-full \\
        --trainers CoOp MaPLe IVLP PromptSRC DualPromptMI DualPromptMI-ivlp DualPromptMI-maple
    # the same on open_clip's ViT-B/16 (random weights; needs pip install -e ".[open_clip]")
    OMP_NUM_THREADS=1 python tools/bench.py --backbone open_clip:ViT-B-16 --trainers CoOp DualPromptMI --compare-full
    # peak memory of a training step against the class count, one pass vs chunks of 100 prompts
    OMP_NUM_THREADS=1 python tools/bench.py --arch vit_b16 --memory-curve 50 200 500 1000 --chunks 0 100 \\
        --trainers CoOp DualPromptMI --plot docs/text_memory_vs_classes.png

Builds a CLIP of the given architecture with random weights (timing does not
need trained weights), then for CoOp, CoCoOp and DualPromptMI on the same
class count and context (4 tokens from "a photo of a"; the default trainers),
and for the deep-prompt trainers at their published settings (``DEEP`` below:
MaPLe, IVLP, PromptSRC, DualPromptMI-ivlp, DualPromptMI-maple), reports:
  * train step: median seconds of forward + backward + SGD step (what the
    Dassl trainers run per batch), and the images per second it gives; on a
    CPU the process's CPU time (run with OMP_NUM_THREADS=1: then it does not
    depend on what else the machine runs), on a GPU the wall clock,
  * eval: images per second with the per-evaluation text cache,
  * peak memory: CUDA max allocated on a GPU, else the process's peak RSS.
    Every measurement runs in a fresh process: peak RSS only ever rises.
A second table gives the step ratios of interest (``PAIRS``): DualPromptMI
against the prompt learner it runs on, PromptSRC against IVLP (its
regularisers' cost) and the deep trainers against CoOp.

Deep prompt depths (9 at the published settings) are clamped to the blocks of
their tower in the chosen architecture (MaPLe's one coupled depth: to the
smaller tower's; the tiny arch has 2 blocks per tower); the table then prints
a note, and each row records the depths it ran. PromptSRC's frozen text
teacher (its 60 templates) is encoded once when the model is built, as in
training, so it is outside the timed steps; its frozen image pass is inside.
``--precision fp16|amp`` runs OpenAI's half layers or autocast (a GPU's settings;
``scripts/gpu_smoke.sh``). The memory curve also prints an fp16 estimate for
CPU runs: the weights at 2 bytes per parameter plus half of what the step
added to the fp32 process (activations and gradients halve in fp16).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
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
# (trainer, baseline, what the ratio shows): the second table
PAIRS = (
    ("DualPromptMI", "CoOp", "DualPromptMI's terms on CoOp's prompts"),
    ("DualPromptMI-ivlp", "IVLP", "DualPromptMI's terms on IVLP's prompts"),
    ("DualPromptMI-maple", "MaPLe", "DualPromptMI's terms on MaPLe's prompts"),
    ("PromptSRC", "IVLP", "PromptSRC's regularisers (one frozen image pass)"),
    ("IVLP", "CoOp", "deep prompts in both towers"),
    ("MaPLe", "CoOp", "coupled deep prompts"),
    ("PromptSRC", "CoOp", "deep prompts and regularisers"),
)
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


def deep_settings(trainer, clip_model):
    """``DEEP[trainer]`` with each depth clamped to its tower's blocks (MaPLe's coupled depth: both
    towers'); returns (settings, note), note "" when nothing was clamped."""
    from clipprompt.clip.backbone import as_backbone

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
    from clipprompt.methods.dualprompt import DualPromptMICLIP, DualPromptMIConfig
    from clipprompt.methods.cocoop import CoCoOpCLIP
    from clipprompt.methods.coop import CoOpCLIP
    from clipprompt.methods.maple import DeepPromptCLIP
    from clipprompt.methods.promptsrc import PromptSRCCLIP
    from clipprompt.prompts.templates import PROMPTSRC_TEMPLATES

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
    from clipprompt.prompts.soft import class_name_length

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
    from clipprompt.clip.backbone import as_backbone

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


def run_child(trainer, args, classes, batch, full_context=False, chunk=0, evaluate=True):
    """One measurement in a fresh process (peak RSS never goes down within a process)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--_one", trainer, "--arch", args.arch,
           "--classes", str(classes), "--batch", str(batch), "--steps", str(args.steps),
           "--device", args.device, "--precision", args.precision, "--chunk", str(chunk),
           "--name-tokens", str(args.name_tokens), "--backbone", args.backbone]
    cmd += ["--full-context"] * full_context + ["--no-eval"] * (not evaluate)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: bench child failed ({' '.join(cmd[2:])}):\n{proc.stderr.strip()[-2000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  measured {trainer} classes={classes} batch={batch} chunk={chunk} full={full_context}: "
          f"text positions {row['text_positions']}, step {row['step_s']:.3f} s, peak {row['peak_mb']:.0f} MB",
          file=sys.stderr, flush=True)
    return row


def speed_table(args):
    rows = []
    for trainer in args.trainers:
        passes = (True, False) if args.compare_full else (False,)
        for full in passes:
            rows.append(run_child(trainer, args, args.classes, args.batch, full_context=full, chunk=args.chunk,
                                  evaluate=not args.no_eval))
    short = {r["trainer"]: r for r in rows if not r["full_context"]}
    full = {r["trainer"]: r for r in rows if r["full_context"]}
    coop = short.get("CoOp")
    print(f"{'trainer':<20}{'text pass':>11}{'step (s)':>10}{'img/s':>8}{'speed-up':>10}{'x CoOp':>8}"
          f"{'eval img/s':>12}{'peak MB':>10}")
    for r in rows:
        name = "77 (before)" if r["full_context"] else "short"
        speedup = ""
        if not r["full_context"] and r["trainer"] in full:
            speedup = f"{full[r['trainer']]['step_s'] / r['step_s']:.2f}x"
            r["speedup_vs_full"] = full[r["trainer"]]["step_s"] / r["step_s"]
        ratio = ""
        if coop and not r["full_context"]:
            r["step_ratio_vs_coop"] = r["step_s"] / coop["step_s"]
            ratio = f"{r['step_ratio_vs_coop']:.3f}"
        ev = f"{r['eval_img_per_s']:.1f}" if r["eval_img_per_s"] is not None else "-"
        print(f"{r['trainer']:<20}{name:>11}{r['step_s']:>10.3f}{r['train_img_per_s']:>8.2f}{speedup:>10}{ratio:>8}"
              f"{ev:>12}{r['peak_mb']:>10.0f}")
    for note in dict.fromkeys(r.get("note") for r in rows if r.get("note")):
        print(f"note: {note}")
    ratio_table(rows)
    return rows


def ratio_table(rows):
    """The step ratios of ``PAIRS`` whose two trainers were measured (short pass; 77 positions too
    with --compare-full); each ratio is also stored in the trainer's row."""
    by = {(r["trainer"], r["full_context"]): r for r in rows}
    pairs = [p for p in PAIRS if (p[0], False) in by and (p[1], False) in by]
    if not pairs:
        return
    full = any(r["full_context"] for r in rows)
    print(f"\n{'step ratio':<30}{'short pass':>11}" + (f"{'77 pos.':>9}" if full else "")
          + f"{'peak MB':>16}  what it shows")
    for trainer, base, what in pairs:
        a, b = by[(trainer, False)], by[(base, False)]
        line = f"{trainer + ' / ' + base:<30}{a['step_s'] / b['step_s']:>10.3f}x"
        a.setdefault("step_ratio", {})[base] = a["step_s"] / b["step_s"]
        if full:
            fa, fb = by.get((trainer, True)), by.get((base, True))
            line += f"{fa['step_s'] / fb['step_s']:>8.3f}x" if fa and fb else f"{'-':>9}"
            if fa and fb:
                fa.setdefault("step_ratio", {})[base] = fa["step_s"] / fb["step_s"]
        line += f"{a['peak_mb']:>8.0f} vs {b['peak_mb']:<5.0f}  {what}"
        print(line)


def memory_curve(args):
    if args.merge:  # curves measured by separate runs (e.g. one per trainer, in parallel)
        rows = []
        for path in args.merge:
            with open(path) as f:
                run = json.load(f)
            rows += run["rows"]
            print(f"from {path}: " + " ".join(f"{k}={run['args'][k]}" for k in
                                               ("arch", "batch", "precision", "steps", "name_tokens", "one_pass_limit")))
        args.arch, args.batch, args.precision = run["args"]["arch"], run["args"]["batch"], run["args"]["precision"]
        args.trainers = list(dict.fromkeys(r["trainer"] for r in rows))
        args.chunks = sorted({r["chunk"] for r in rows})
        return memory_table(rows, args)
    rows = []
    for trainer in args.trainers:
        for chunk in args.chunks:
            measured = []
            for classes in args.memory_curve:
                if chunk == 0 and args.one_pass_limit and classes > args.one_pass_limit and len(measured) >= 2:
                    rows.append(extrapolate(measured[-2:], classes))
                    continue
                measured.append(run_child(trainer, args, classes, args.batch, chunk=chunk, evaluate=False))
                rows.append(measured[-1])
    return memory_table(rows, args)


def memory_table(rows, args):
    cpu = rows[0]["memory"] == "peak RSS"
    head = f"{'trainer':<20}{'chunk':>6}{'classes':>9}{'step (s)':>10}{'before MB':>11}{'peak MB':>10}{'step adds':>11}"
    print(head + (f"{'fp16 est. MB':>14}" if cpu else ""))
    for r in rows:
        r["step_adds_mb"] = r["train_peak_mb"] - r["before_step_mb"]
        mark = "*" if r.get("extrapolated") else ""
        line = (f"{r['trainer']:<20}{r['chunk'] or '-':>6}{r['classes']:>9}{r['step_s']:>10.2f}"
                f"{r['before_step_mb']:>11.0f}{r['train_peak_mb']:>9.0f}{mark:1}{r['step_adds_mb']:>11.0f}")
        if cpu and r["precision"] == "fp32":
            # fp16 weights: 2 bytes per parameter; activations and gradients of the step halve.
            r["fp16_estimate_mb"] = r["params_m"] * 1e6 * 2 / 2**20 + r["step_adds_mb"] / 2
            line += f"{r['fp16_estimate_mb']:>14.0f}"
        print(line)
    print(f"(time: {rows[0]['clock']}; memory: {rows[0]['memory']}; 'step adds' = peak during training minus memory before the first step)")
    if any(r.get("extrapolated") for r in rows):
        print("* not run (one pass above --one-pass-limit): extrapolated linearly from the two largest measured class counts")
    if args.plot:
        plot_memory(rows, args)
    return rows


def extrapolate(measured, classes):
    """A one-pass point not run (too large for the machine), on the line through two measured ones."""
    a, b = measured
    row = dict(b, classes=classes, extrapolated=True)
    for key in ("step_s", "train_peak_mb", "peak_mb", "before_step_mb"):
        slope = (b[key] - a[key]) / (b["classes"] - a["classes"])
        row[key] = b[key] + slope * (classes - b["classes"])
    return row


def plot_memory(rows, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for trainer in args.trainers:
        for chunk in args.chunks:
            sel = [r for r in rows if r["trainer"] == trainer and r["chunk"] == chunk]
            if chunk:  # up to one chunk of classes the chunked pass is the one pass
                sel += [r for r in rows if r["trainer"] == trainer and r["chunk"] == 0 and r["classes"] <= chunk
                        and not any(s["classes"] == r["classes"] for s in sel)]
            pts = sorted((r["classes"], r["train_peak_mb"] / 1024) for r in sel if not r.get("extrapolated"))
            if not pts:
                continue
            label = f"{trainer}, " + (f"chunks of {chunk}" if chunk else "one pass")
            line, = ax.plot(*zip(*pts), marker="o", linestyle="-" if chunk else "--", label=label)
            extra = sorted((r["classes"], r["train_peak_mb"] / 1024) for r in sel if r.get("extrapolated"))
            if extra:
                ax.plot(*zip(*([pts[-1]] + extra)), marker="x", linestyle=":", color=line.get_color())
    kind = rows[0]["memory"]
    ax.set_xlabel("classes")
    ax.set_ylabel(f"{kind} of a training step (GiB)")
    ax.set_title(f"Memory of a training step vs class count ({args.arch}, batch {args.batch}, {args.precision}, "
                 f"{rows[0]['device']}, {rows[0]['text_positions']} text positions)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="x, dotted: extrapolated" if any(r.get("extrapolated") for r in rows) else None,
              title_fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.plot)), exist_ok=True)
    fig.savefig(args.plot, dpi=120)
    print(f"wrote {args.plot}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", choices=sorted(ARCHS), default="small")
    p.add_argument("--backbone", default="", metavar="open_clip:ARCH",
                   help="an open_clip architecture at its own shapes (random weights) instead of --arch")
    p.add_argument("--classes", type=int, default=50)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=5, help="timed training steps after one warm-up (median reported); 0: time the one step")
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp16/amp: a GPU's settings (amp on a CPU: bfloat16)")
    p.add_argument("--trainers", nargs="+", default=list(DEFAULT_TRAINERS), choices=TRAINERS,
                   help=f"default: {' '.join(DEFAULT_TRAINERS)}")
    p.add_argument("--name-tokens", type=int, default=0, help="class names of this many BPE tokens (0: 'class <i>')")
    p.add_argument("--chunk", type=int, default=0, help="MODEL.TEXT_CHUNK_SIZE for the speed table")
    p.add_argument("--compare-full", action="store_true", help="also time the 77-position text pass (before short passes)")
    p.add_argument("--memory-curve", type=int, nargs="+", metavar="CLASSES", help="peak memory at these class counts")
    p.add_argument("--chunks", type=int, nargs="+", default=[0, 100], help="chunk sizes for --memory-curve (0: one pass)")
    p.add_argument("--one-pass-limit", type=int, default=0,
                   help="--memory-curve: extrapolate one-pass points above this class count instead of running them")
    p.add_argument("--plot", help="PNG of the memory curve")
    p.add_argument("--json", help="also write the numbers to this JSON file")
    p.add_argument("--full-context", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-eval", action="store_true", help="time training steps only")
    p.add_argument("--merge", nargs="+", metavar="JSON", help="print and plot memory curves from earlier --json files")
    p.add_argument("--_one", help=argparse.SUPPRESS)
    args = p.parse_args()
    for name in ("classes", "batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.steps < 0 or args.chunk < 0 or any(c < 0 for c in args.chunks) or any(c < 1 for c in args.memory_curve or [1]):
        p.error("--steps and chunk sizes must be >= 0, class counts >= 1")

    if args._one:  # child process: one measurement, print JSON
        print(json.dumps(measure(args._one, args.arch, args.classes, args.batch, args.steps, args.device,
                                 args.full_context, args.chunk, not args.no_eval, args.precision, args.name_tokens,
                                 args.backbone)))
        return
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    if not args.merge:
        if args.backbone and not args.backbone.startswith("open_clip:"):
            p.error("--backbone takes open_clip:<arch> (OpenAI's shapes: --arch)")
        print(f"arch={args.backbone or args.arch} batch={args.batch} device={args.device} precision={args.precision} "
              f"OMP_NUM_THREADS={threads} steps={args.steps} name_tokens={args.name_tokens}"
              + ("" if args.memory_curve else f" classes={args.classes}"), flush=True)
    rows = memory_curve(args) if args.memory_curve or args.merge else speed_table(args)
    if not (args.memory_curve or args.merge):
        print(f"(time: {rows[0]['clock']}; memory: {rows[0]['memory']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items() if not k.startswith("_")}, "rows": rows}, f, indent=2)


def _cuda():
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
