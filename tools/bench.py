"""Speed and memory of one training step and of evaluation, per trainer.

    OMP_NUM_THREADS=1 python tools/bench.py --arch vit_b16 --classes 50 --batch 4

Builds a CLIP of the given architecture with random weights (timing does not
need trained weights), then for CoOp, CoCoOp and DualPromptMI on the same
class count and context (4 tokens from "a photo of a") reports:
  * train step: median seconds of forward + backward + SGD step (what the
    Dassl trainers run per batch),
  * eval: images per second with the per-evaluation text cache,
  * peak memory: CUDA max allocated on a GPU, else the process's peak RSS
    (each trainer runs in its own process so the numbers do not mix).
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
    "tiny": (64, 32, 1, 64, 16, 64, 1),
    "small": (256, 64, 4, 256, 16, 256, 4),
    "vit_b32": (512, 224, 12, 768, 32, 512, 12),
    "vit_b16": (512, 224, 12, 768, 16, 512, 12),
}
TRAINERS = ("CoOp", "CoCoOp", "DualPromptMI")


def build_clip(arch, device):
    import torch
    from clip.model import CLIP

    embed, res, vlayers, vwidth, patch, twidth, tlayers = ARCHS[arch]
    torch.manual_seed(0)
    model = CLIP(embed, res, vlayers, vwidth, patch, 77, 49408, twidth, twidth // 64, tlayers)
    model = model.float().eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def build_model(trainer, clip_model, classnames):
    from clipprompt.dualprompt import DualPromptMICLIP, DualPromptMIConfig
    from clipprompt.models import CoCoOpCLIP, CoOpCLIP

    if trainer == "CoOp":
        return CoOpCLIP(clip_model, classnames, n_ctx=4, ctx_init="a photo of a")
    if trainer == "CoCoOp":
        return CoCoOpCLIP(clip_model, classnames, n_ctx=4, ctx_init="a photo of a")
    return DualPromptMICLIP(clip_model, classnames, ["a photo of a {}."], DualPromptMIConfig())


def measure(trainer, arch, num_classes, batch, steps, device_name):
    import torch
    import torch.nn.functional as F

    device = torch.device(device_name)
    clip_model = build_clip(arch, device)
    classnames = [f"class {i}" for i in range(num_classes)]
    model = build_model(trainer, clip_model, classnames).to(device)
    res = clip_model.visual.input_resolution
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, res, res, generator=g).to(device)
    labels = (torch.arange(batch) % num_classes).to(device)
    if trainer == "DualPromptMI":
        model.observe(model.encode_image(images), labels)
    params = [p for n, p in model.named_parameters() if not n.startswith(("image_encoder.", "text_encoder.", "logit_scale"))]
    optim = torch.optim.SGD(params, lr=1e-3)

    def step():
        if trainer == "DualPromptMI":
            loss = model.loss(images, labels)[0]
        else:
            loss = F.cross_entropy(model(images), labels)
        optim.zero_grad()
        loss.backward()
        optim.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    step()  # warm-up
    times = []
    for _ in range(steps):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)

    model.eval()
    eval_batches = max(steps, 2)
    with torch.no_grad(), model.cached_text_features():
        model.predict(images)  # warm-up
        sync()
        start = time.perf_counter()
        for _ in range(eval_batches):
            model.predict(images)
        sync()
        eval_time = time.perf_counter() - start
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
        memory_kind = "cuda max allocated"
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        memory_kind = "peak RSS"
    return {"trainer": trainer, "step_s": statistics.median(times), "step_s_min": min(times),
            "eval_img_per_s": eval_batches * batch / eval_time, "peak_mb": peak_mb, "memory": memory_kind}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", choices=sorted(ARCHS), default="small")
    p.add_argument("--classes", type=int, default=50)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=5, help="timed training steps (median reported)")
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--trainers", nargs="+", default=list(TRAINERS), choices=TRAINERS)
    p.add_argument("--json", help="also write the numbers to this JSON file")
    p.add_argument("--_one", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args._one:  # child process: one trainer, print JSON
        print(json.dumps(measure(args._one, args.arch, args.classes, args.batch, args.steps, args.device)))
        return
    rows = []
    for trainer in args.trainers:
        cmd = [sys.executable, os.path.abspath(__file__), "--_one", trainer, "--arch", args.arch,
               "--classes", str(args.classes), "--batch", str(args.batch), "--steps", str(args.steps), "--device", args.device]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    coop = next((r for r in rows if r["trainer"] == "CoOp"), None)
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"arch={args.arch} classes={args.classes} batch={args.batch} device={args.device} OMP_NUM_THREADS={threads} steps={args.steps}")
    print(f"{'trainer':<14}{'step (s)':>10}{'x CoOp':>8}{'eval img/s':>12}{'peak MB':>10}")
    for r in rows:
        ratio = f"{r['step_s'] / coop['step_s']:.3f}" if coop else "-"
        r["step_ratio_vs_coop"] = float(ratio) if coop else None
        print(f"{r['trainer']:<14}{r['step_s']:>10.4f}{ratio:>8}{r['eval_img_per_s']:>12.1f}{r['peak_mb']:>10.0f}")
    print(f"(memory: {rows[0]['memory']})")
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
