"""Speed and memory of one training step and of evaluation, per trainer.

    # train step and evaluation per trainer; --compare-full adds the 77-position text pass ("before")
    OMP_NUM_THREADS=1 python -m tools.bench --arch vit_b16 --classes 50 --batch 4 --steps 3 --compare-full
    # deep prompts: MaPLe, IVLP, PromptSRC and DualPromptMI over them, with the step ratios
    OMP_NUM_THREADS=1 python -m tools.bench --arch vit_b16 --classes 50 --batch 4 --steps 3 --compare-full \\
        --trainers CoOp MaPLe IVLP PromptSRC DualPromptMI DualPromptMI-ivlp DualPromptMI-maple DualPromptMI-promptsrc
    # the same on open_clip's ViT-B/16 (random weights; needs pip install -e ".[open_clip]")
    OMP_NUM_THREADS=1 python -m tools.bench --backbone open_clip:ViT-B-16 --trainers CoOp DualPromptMI --compare-full
    # peak memory of a training step against the class count, one pass vs chunks of 100 prompts
    OMP_NUM_THREADS=1 python -m tools.bench --arch vit_b16 --memory-curve 50 200 500 1000 --chunks 0 100 \\
        --trainers CoOp DualPromptMI --plot docs/text_memory_vs_classes.png

Builds a CLIP of the given architecture with random weights (timing does not
need trained weights), then for CoOp, CoCoOp and DualPromptMI on the same
class count and context (4 tokens from "a photo of a"; the default trainers),
and for the deep-prompt trainers at their published settings (``VARIANTS`` in tools/benchlib.py:
MaPLe, IVLP, PromptSRC, DualPromptMI-ivlp, DualPromptMI-maple, DualPromptMI-promptsrc), reports:
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
import subprocess
import sys

from tools.benchlib import ARCHS, DEFAULT_TRAINERS, PRECISIONS, TRAINERS, measure

# (trainer, baseline, what the ratio shows): the second table
PAIRS = (
    ("DualPromptMI", "CoOp", "DualPromptMI's terms on CoOp's prompts"),
    ("DualPromptMI-ivlp", "IVLP", "DualPromptMI's terms on IVLP's prompts"),
    ("DualPromptMI-maple", "MaPLe", "DualPromptMI's terms on MaPLe's prompts"),
    ("DualPromptMI-promptsrc", "PromptSRC", "DualPromptMI's terms on PromptSRC"),
    ("PromptSRC", "IVLP", "PromptSRC's regularisers (one frozen image pass)"),
    ("IVLP", "CoOp", "deep prompts in both towers"),
    ("MaPLe", "CoOp", "coupled deep prompts"),
    ("PromptSRC", "CoOp", "deep prompts and regularisers"),
)


def run_child(trainer, args, classes, batch, full_context=False, chunk=0, evaluate=True):
    """One measurement in a fresh process (peak RSS never goes down within a process)."""
    cmd = [sys.executable, "-m", "tools.bench", "--_one", trainer, "--arch", args.arch,
           "--classes", str(classes), "--batch", str(batch), "--steps", str(args.steps),
           "--device", args.device, "--precision", args.precision, "--chunk", str(chunk),
           "--name-tokens", str(args.name_tokens), "--backbone", args.backbone]
    cmd += ["--full-context"] * full_context + ["--no-eval"] * (not evaluate)
    proc = subprocess.run(cmd, capture_output=True, text=True)  # the same cwd, so `tools` imports as here
    if proc.returncode != 0:
        sys.exit(f"error: bench child failed ({' '.join(cmd[3:])}):\n{proc.stderr.strip()[-2000:]}")
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
    print(f"{'trainer':<24}{'text pass':>11}{'step (s)':>10}{'img/s':>8}{'speed-up':>10}{'x CoOp':>8}"
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
        print(f"{r['trainer']:<24}{name:>11}{r['step_s']:>10.3f}{r['train_img_per_s']:>8.2f}{speedup:>10}{ratio:>8}"
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
    print(f"\n{'step ratio':<36}{'short pass':>11}" + (f"{'77 pos.':>9}" if full else "")
          + f"{'peak MB':>16}  what it shows")
    for trainer, base, what in pairs:
        a, b = by[(trainer, False)], by[(base, False)]
        line = f"{trainer + ' / ' + base:<36}{a['step_s'] / b['step_s']:>10.3f}x"
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
    head = f"{'trainer':<24}{'chunk':>6}{'classes':>9}{'step (s)':>10}{'before MB':>11}{'peak MB':>10}{'step adds':>11}"
    print(head + (f"{'fp16 est. MB':>14}" if cpu else ""))
    for r in rows:
        r["step_adds_mb"] = r["train_peak_mb"] - r["before_step_mb"]
        mark = "*" if r.get("extrapolated") else ""
        line = (f"{r['trainer']:<24}{r['chunk'] or '-':>6}{r['classes']:>9}{r['step_s']:>10.2f}"
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
    main()
