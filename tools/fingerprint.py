#!/usr/bin/env python3
"""Behaviour fingerprint of the repository: proof that a restructuring changes no behaviour.

    python tools/fingerprint.py --out before.json                 # today's layout (python tools/X.py)
    python tools/fingerprint.py --layout new --out after.json     # python -m tools.X / -m benchmarks.X
    python tools/fingerprint.py --compare before.json after.json  # each difference; exit 1 if any
    python /elsewhere/fingerprint.py --repo CHECKOUT --out x.json # another checkout, this copy of the script

Only the standard library runs in this process: everything that needs torch, Dassl or the
repository's packages runs in a subprocess (``python train.py ...``, ``python -c ...``), so the
same file fingerprints the old layout and the new one. What one run records:

1. ``train``: every trainer (ZeroshotCLIP, ZeroshotCLIP2, CoOp, CoCoOp, KgCoOp, ProGrad, MaPLe,
   PromptSRC, DualPromptMI over coop, ivlp, maple and promptsrc prompts) trained 2 epochs x 2 steps through
   ``python train.py`` on a tiny random CLIP (OpenAI's architecture at width 64; 1 block per tower,
   3 for the deep-prompt runs, as tests/conftest.py builds them) and a tiny colour-coded
   OxfordPets-layout dataset (tests/conftest.write_pets_dataset's recipe), with the options of
   tests/helpers.py (TINY, deep_args, DUAL_LEARNERS) plus TRAIN.PRINT_FREQ 1, a fixed seed, fp32
   (every TRAINER.<X>.PREC fp32, USE_CUDA False), DATALOADER.NUM_WORKERS 0 and one thread.
   Per run: every printed step line parsed (loss and the other meters as printed: value and
   running mean, 4 decimals, lr), the tensorboard scalars Dassl writes at every step (running
   means at float32 precision, read from the event files by a small protobuf reader), every
   checkpoint's tensors (dtype, shape, sha256 of the bytes, sum) through a torch subprocess,
   results.json and run_status.json, the normalised stdout and stderr, the list of files written.
2. ``help``: ``--help`` of every command of COMMANDS (and of each sub-command of one that has
   sub-parsers), COLUMNS=80; its exit status, stdout and stderr. This script is not among them.
3. ``benchmarks``: ``QUICK=1 SEEDS=1 SHOTS=2 bash scripts/mini_benchmark.sh`` with BENCHMARK unset
   (fashion10 on Debian's FashionMNIST: DATA is an empty folder, so the IDX files come from
   /usr/share/datasets/fashion-mnist) and with BENCHMARK=fashion_colours; PYTHON is this
   interpreter, JOBS the script's default (2) unless --jobs. Per benchmark: its stdout and stderr,
   every results.json and run_status.json (sorted by relative path), the CSV/Markdown tables,
   mini_clip.json, the per-run grid logs (normalised, and their step lines parsed), the checkpoints
   (mini CLIP and prompt learners) as above, the tensorboard scalars, digests of the exported
   downstream images and split file, and the list of files written.

What is normalised (everything else is recorded as printed or written):
- paths, in output, logs and JSON files alike (replaced, so the layout under them is still compared):
  the temporary folder -> <TMP>, the repository -> <REPO>, this interpreter -> <PYTHON>, the
  user's home -> <HOME>;
- dates and times of day (YYYY-MM-DD HH:MM:SS, ISO) -> <DATETIME>;
- durations: Dassl's "time X (Y) data X (Y)" and "eta H:MM:SS" of a step line, "Elapsed: H:MM:SS",
  the grid's "done RUN (N s)", the pretraining's "N s elapsed, ETA N s" and "(N min of training,
  N min in all", mini_benchmark's "wall time: ..." line; keys of JSON files that hold times
  (timestamp, started, updated, elapsed*, *_seconds, *_time) are dropped;
- Dassl's "** System info **" block (torch's collect_env: versions, CPU flags) -> one line;
- tensorboard event file names (events.out.tfevents.<time>.<host>.<pid>.<n>) -> events.out.tfevents.<T>;
  memory addresses 0x... (8+ hex digits) -> <ADDR>;
- the argparse usage block of a --help: its lines joined (the wrapping depends on the length of
  the program name) and its first token -> <prog>, so "grid.py" and "python -m tools.grid" agree;
- the order in which parallel runs finish: the grid's "done ..." lines are recorded sorted, apart
  from the rest of the output; the grid's progress bar (stderr, carriage returns) is dropped;
- stderr's warnings about deprecated packages in site-packages (pkg_resources) are kept; lines
  are only normalised as above.
``--compare`` ignores the "meta" section (layout, commands used, durations); ``--ignore REGEX``
skips key paths that match; ``--equate-invocations`` reads "python tools/X.py" and
"python -m tools.X" (and benchmarks/) as the same text in both files before comparing.
"""

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ----- the commands: stable key -> (old invocation, new invocation), arguments after the interpreter
COMMANDS = {
    "train": (["train.py"], ["train.py"]),
    "parse_test_res": (["parse_test_res.py"], ["parse_test_res.py"]),
    "tools.ablation": (["tools/ablation.py"], ["-m", "tools.ablation"]),
    "tools.bench": (["tools/bench.py"], ["-m", "tools.bench"]),
    "tools.export_open_clip": (["tools/export_open_clip.py"], ["-m", "tools.export_open_clip"]),
    "tools.grid": (["tools/grid.py"], ["-m", "tools.grid"]),
    "tools.parity_upstream": (["tools/parity_upstream.py"], ["-m", "tools.parity_upstream"]),
    "tools.plot_base_new": (["tools/plot_base_new.py"], ["-m", "tools.plot_base_new"]),
    "benchmarks.ordering": (["benchmarks/ordering.py"], ["-m", "benchmarks.ordering"]),
    "benchmarks.pretrain_mini_clip": (["benchmarks/pretrain_mini_clip.py"], ["-m", "benchmarks.pretrain_mini_clip"]),
    "benchmarks.targets": (["benchmarks/targets.py"], ["-m", "benchmarks.targets"]),
}

# ----- the tiny training runs (tests/helpers.py's TINY, deep_args, DUAL_LEARNERS) -------------
TINY = ["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
        "DATALOADER.TEST.BATCH_SIZE", "16", "OPTIM.MAX_EPOCH", "2", "TRAIN.PRINT_FREQ", "1", "USE_CUDA", "False"]
FP32 = [f"TRAINER.{key}.PREC" for key in ("ZEROSHOTCLIP", "COOP", "COCOOP", "KGCOOP", "PROGRAD", "MAPLE",
                                           "PROMPTSRC", "DUALPROMPTMI")]
FP32 = [item for key in FP32 for item in (key, "fp32")]
DEEP = ["INPUT.TRANSFORMS", "['normalize']", "DATALOADER.TRAIN_X.SAMPLER", "SequentialSampler",
        "TRAIN.CHECKPOINT_FREQ", "1"]
MOVING = ["OPTIM.LR", "0.5", "OPTIM.WARMUP_EPOCH", "0"]  # the prompts move visibly in 4 steps
DUAL_DEEP = ["TRAINER.DUALPROMPTMI.DEEP.TEXT_DEPTH", "3", "TRAINER.DUALPROMPTMI.DEEP.VISION_N_CTX", "2",
             "TRAINER.DUALPROMPTMI.DEEP.VISION_DEPTH", "2"]
# name -> (trainer, CLIP: 1 or 3 blocks, extra options)
TRAIN_RUNS = {
    "ZeroshotCLIP": ("ZeroshotCLIP", 1, []),
    "ZeroshotCLIP2": ("ZeroshotCLIP2", 1, []),
    "CoOp": ("CoOp", 1, MOVING),
    "CoCoOp": ("CoCoOp", 1, MOVING),
    "KgCoOp": ("KgCoOp", 1, MOVING),
    "ProGrad": ("ProGrad", 1, MOVING),
    "MaPLe": ("MaPLe", 3, [*DEEP, "TRAINER.MAPLE.PROMPT_DEPTH", "3"]),
    "PromptSRC": ("PromptSRC", 3, [*DEEP, "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "3",
                                   "TRAINER.PROMPTSRC.N_CTX_VISION", "2", "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "2",
                                   "TRAINER.PROMPTSRC.GPA_MEAN", "1.5", "TRAINER.PROMPTSRC.GPA_STD", "1.0"]),
    "DualPromptMI": ("DualPromptMI", 1, MOVING),
    "DualPromptMI-ivlp": ("DualPromptMI", 3, [*MOVING, "TRAINER.DUALPROMPTMI.PROMPT_LEARNER", "ivlp", *DUAL_DEEP]),
    "DualPromptMI-maple": ("DualPromptMI", 3, [*MOVING, "TRAINER.DUALPROMPTMI.PROMPT_LEARNER", "maple", *DUAL_DEEP]),
    "DualPromptMI-promptsrc": ("DualPromptMI", 3, [*MOVING, "TRAINER.DUALPROMPTMI.PROMPT_LEARNER", "promptsrc", *DUAL_DEEP,
                                                   "TRAINER.DUALPROMPTMI.PROMPTSRC.GPA_MEAN", "1.5",
                                                   "TRAINER.DUALPROMPTMI.PROMPTSRC.GPA_STD", "1.0"]),
}
SEED = 1

# tests/conftest.py's TINY_TRAINER_CFG
TINY_CFG = """DATALOADER:
  TRAIN_X:
    BATCH_SIZE: 4
  TEST:
    BATCH_SIZE: 16
  NUM_WORKERS: 0
INPUT:
  SIZE: (32, 32)
  INTERPOLATION: "bicubic"
  PIXEL_MEAN: [0.48145466, 0.4578275, 0.40821073]
  PIXEL_STD: [0.26862954, 0.26130258, 0.27577711]
  TRANSFORMS: ["random_flip", "normalize"]
OPTIM:
  NAME: "sgd"
  LR: 0.002
  MAX_EPOCH: 2
  LR_SCHEDULER: "cosine"
  WARMUP_EPOCH: 1
  WARMUP_TYPE: "constant"
  WARMUP_CONS_LR: 1e-5
TRAIN:
  PRINT_FREQ: 100
"""

# Run in a subprocess: the tiny CLIPs (tests/conftest.build_tiny_clip) and the pets dataset
# (tests/conftest.write_pets_dataset), from clip-anytorch, torch and Pillow only.
SETUP_SOURCE = r'''
import json, os, sys
import torch
from clip.model import CLIP
from PIL import Image

out = sys.argv[1]
os.makedirs(os.path.join(out, "clip"), exist_ok=True)
for layers, name in ((1, "tiny_clip.pt"), (3, "tiny_clip3.pt")):
    torch.manual_seed(0)
    model = CLIP(embed_dim=64, image_resolution=32, vision_layers=layers, vision_width=64, vision_patch_size=16,
                 context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1,
                 transformer_layers=layers).float().eval()
    torch.save(model.state_dict(), os.path.join(out, "clip", name))

classes = ["abyssinian", "beagle", "boxer", "chihuahua", "persian", "pug", "samoyed"]
folder = os.path.join(out, "data", "oxford_pets")
os.makedirs(os.path.join(folder, "images"), exist_ok=True)
split = {"train": [], "val": [], "test": []}
g = torch.Generator().manual_seed(0)
for label, name in enumerate(classes):
    colour = torch.rand(3, generator=g)
    for part, count in (("train", 4), ("val", 2), ("test", 3)):
        for i in range(count):
            pixels = (colour * 200 + torch.rand(32, 32, 3, generator=g) * 55).byte().numpy()
            rel = f"{name}_{part}_{i}.jpg"
            Image.fromarray(pixels).save(os.path.join(folder, "images", rel))
            split[part].append([rel, label, name])
with open(os.path.join(folder, "split_zhou_OxfordPets.json"), "w") as f:
    json.dump(split, f)
'''

# Run in a subprocess: every tensor of each checkpoint (paths on stdin, JSON), flattened.
CHECKPOINT_SOURCE = r'''
import hashlib, json, sys
import torch

def describe(value):
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        digest = hashlib.sha256(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes()).hexdigest()
        total = repr(float(t.double().sum())) if t.is_floating_point() or t.dtype in (torch.int64, torch.int32, torch.uint8) else ""
        return f"tensor {str(t.dtype).replace('torch.', '')} {list(t.shape)} sha256:{digest[:20]} sum={total}"
    if isinstance(value, (int, float, str, bool)) or value is None:
        return repr(value)
    return f"<{type(value).__module__}.{type(value).__qualname__}>"

def flatten(prefix, value, out):
    if isinstance(value, dict):
        for key in value:
            flatten(f"{prefix}.{key}" if prefix else str(key), value[key], out)
    elif isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple, torch.Tensor)) for v in value):
        for i, v in enumerate(value):
            flatten(f"{prefix}[{i}]", v, out)
    elif isinstance(value, (list, tuple)):
        out[prefix] = repr(value)
    else:
        out[prefix] = describe(value)

result = {}
for path in json.load(sys.stdin):
    try:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            how = "weights_only"
        except Exception:
            payload = torch.load(path, map_location="cpu", weights_only=False)
            how = "pickle"
        flat = {}
        flatten("", payload, flat)
        result[path] = {"load": how, "entries": flat}
    except Exception as exc:
        result[path] = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(result))
'''

BENCHMARKS = {
    "fashion10": {},
    "fashion_colours": {"BENCHMARK": "fashion_colours"},
}


# ======================================================================================
# normalisation
# ======================================================================================
class Normaliser:
    def __init__(self, tmp, repo):
        pairs = []
        for path, token in ((tmp, "<TMP>"), (repo, "<REPO>"), (sys.executable, "<PYTHON>"),
                            (os.path.expanduser("~"), "<HOME>")):
            for variant in {path, os.path.realpath(path)}:
                if variant and variant != "/":
                    pairs.append((variant, token))
        # longest first: the temporary folder may lie under the home folder or the repository
        self.pairs = sorted(pairs, key=lambda p: -len(p[0]))

    SUBS = [
        (re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?"), "<DATETIME>"),
        (re.compile(r"time \d+\.\d+ \(\d+\.\d+\) data \d+\.\d+ \(\d+\.\d+\)"), "time <T> data <T>"),
        (re.compile(r" eta (\d+ days?, )?\d+:\d\d:\d\d$"), " eta <T>"),
        (re.compile(r"^Elapsed: (\d+ days?, )?\d+:\d\d:\d\d"), "Elapsed: <T>"),
        (re.compile(r"^((done|failed) \S+.*) \(\d+(\.\d+)? s\)"), r"\1 (<T> s)"),
        (re.compile(r"\d+ s elapsed, ETA \d+ s"), "<T> s elapsed, ETA <T> s"),
        (re.compile(r"\(\d+(\.\d+)? min of training, \d+(\.\d+)? min in all"), "(<T> min of training, <T> min in all"),
        (re.compile(r"^wall time: pretraining \d+ s, protocol \d+ s, total \d+ s"),
         "wall time: pretraining <T> s, protocol <T> s, total <T> s"),
        (re.compile(r"events\.out\.tfevents\.[\w.-]+"), "events.out.tfevents.<T>"),
        (re.compile(r"0x[0-9a-fA-F]{8,}"), "<ADDR>"),
    ]

    def text(self, line):
        for path, token in self.pairs:
            line = line.replace(path, token)
        for pattern, repl in self.SUBS:
            line = pattern.sub(repl, line)
        return line

    def lines(self, text):
        """Normalised lines; Dassl's System info block becomes one line."""
        out, skipping = [], False
        for line in text.splitlines():
            if line.startswith("** System info **"):
                out.append("** System info ** <omitted>")
                skipping = True
                continue
            if skipping:
                if line.startswith("Loading trainer") or line.startswith("Setting fixed seed") or line.startswith("# "):
                    skipping = False
                else:
                    continue
            out.append(self.text(line.rstrip()))
        return out

    TIME_KEYS = re.compile(r"^(timestamp|started|updated|finished_at|elapsed.*|.*_seconds|.*_time|time)$")

    def json(self, value):
        if isinstance(value, dict):
            return {k: self.json(v) for k, v in value.items() if not self.TIME_KEYS.match(str(k))}
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value


def help_lines(text, norm):
    """--help text: the usage block joined into one line, its program name -> <prog>."""
    lines = text.splitlines()
    if lines and lines[0].startswith("usage: "):
        end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
        usage = " ".join(" ".join(lines[:end]).split())
        usage = re.sub(r"^usage: \S+", "usage: <prog>", usage)
        lines = [usage, *lines[end:]]
    return [norm.text(line.rstrip()) for line in lines]


# ======================================================================================
# parsing what runs leave behind
# ======================================================================================
STEP_LINE = re.compile(r"^epoch \[(\d+)/(\d+)\] batch \[(\d+)/(\d+)\] (.*?)(?: lr (\S+))?(?: eta .*)?$")
METER = re.compile(r"(\w+) (-?[\d.]+(?:e[-+]\d+)?|nan|inf|-inf) \((-?[\d.]+(?:e[-+]\d+)?|nan|inf|-inf)\)")


def parse_steps(lines):
    """Dassl's step lines: [{"epoch": "1/2", "batch": "1/2", "meters": {name: [value, mean]}, "lr": ...}]."""
    steps = []
    for line in lines:
        m = STEP_LINE.match(line)
        if not m:
            continue
        rest = re.sub(r"^time \S+ \(\S+\) data \S+ \(\S+\) ", "", m.group(5))
        rest = rest.replace("time <T> data <T> ", "")
        meters = {name: [value, mean] for name, value, mean in METER.findall(rest) if name not in ("time", "data")}
        steps.append({"epoch": f"{m.group(1)}/{m.group(2)}", "batch": f"{m.group(3)}/{m.group(4)}",
                      "meters": meters, "lr": m.group(6)})
    return steps


def _varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, i


def _fields(buf):
    """(field number, wire type, value) of a protobuf message; lengths delimited as bytes."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield field, wire, value


def read_tensorboard(path):
    """{tag: [[step, value], ...]} of the scalars of a tensorboard event file (TFRecord of Event protos:
    step = field 2, summary = field 5 -> value = field 1 -> tag = 1, simple_value = 2 (float32))."""
    scalars = {}
    with open(path, "rb") as f:
        data = f.read()
    i = 0
    while i + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[i:i + 8])
        event = data[i + 12:i + 12 + length]
        i += 12 + length + 4
        step, summaries = 0, []
        for field, _, value in _fields(event):
            if field == 2:
                step = value
            elif field == 5:
                summaries.append(value)
        for summary in summaries:
            for field, _, value in _fields(summary):
                if field != 1:
                    continue
                tag, number = None, None
                for f2, wire, v2 in _fields(value):
                    if f2 == 1:
                        tag = v2.decode()
                    elif f2 == 2 and wire == 5:
                        number = struct.unpack("<f", v2)[0]
                if tag is not None and number is not None:
                    scalars.setdefault(tag, []).append([step, repr(number)])
    return scalars


def digest_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def list_files(folder, norm):
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            out.append(norm.text(os.path.relpath(os.path.join(root, name), folder)))
    return sorted(out)


# ======================================================================================
# running things
# ======================================================================================
def base_env(threads="1"):
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, PYTHONUNBUFFERED="1", OUTDATED_IGNORE="1",
               CUDA_VISIBLE_DEVICES="", COLUMNS="80", LINES="24", PYTHONHASHSEED="0", TZ="UTC",
               MPLBACKEND="Agg")
    for key in ("BENCHMARK", "DATA", "OUTPUT", "SEEDS", "SHOTS", "JOBS", "TRAINERS", "QUICK", "CLIP_CKPT",
                "CONFIG_ROOT", "PYTHON", "LAUNCH", "RESUME", "TRAINER", "CFG"):
        env.pop(key, None)
    return env


def run(argv, env, cwd=None, timeout=None):
    began = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return proc, time.monotonic() - began


def log(message):
    print(message, file=sys.stderr, flush=True)


def checkpoints_of(paths, norm, env):
    """{normalised path: flattened tensors} through one torch subprocess."""
    if not paths:
        return {}
    began = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", CHECKPOINT_SOURCE], input=json.dumps(paths), cwd=REPO, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {"<error>": norm.lines(proc.stderr)[-20:]}
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    log(f"  {len(paths)} checkpoint(s) read in {time.monotonic() - began:.0f} s")
    return {norm.text(path): norm.json(value) for path, value in sorted(found.items())}


def tensorboard_of(folder, norm):
    out = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.startswith("events.out.tfevents."):
                rel = norm.text(os.path.relpath(os.path.join(root, name), folder))
                try:
                    out[rel] = read_tensorboard(os.path.join(root, name))
                except Exception as exc:  # a truncated file is recorded as such
                    out[rel] = {"<error>": f"{type(exc).__name__}: {exc}"}
    return out


def json_files(folder, names, norm):
    out = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name in names:
                path = os.path.join(root, name)
                rel = norm.text(os.path.relpath(path, folder))
                try:
                    with open(path) as f:
                        out[rel] = norm.json(json.load(f))
                except ValueError as exc:
                    out[rel] = {"<error>": f"{type(exc).__name__}: {exc}"}
    return dict(sorted(out.items()))


def fingerprint_train(tmp, norm, python_cmd, meta):
    env = base_env()
    proc, seconds = run([sys.executable, "-c", SETUP_SOURCE, tmp], env)
    if proc.returncode != 0:
        raise SystemExit("error: could not build the tiny CLIP and dataset:\n" + proc.stderr[-3000:])
    cfg = os.path.join(tmp, "tiny.yaml")
    with open(cfg, "w") as f:
        f.write(TINY_CFG)
    section, ckpts = {}, []
    for name, (trainer, blocks, extra) in TRAIN_RUNS.items():
        out = os.path.join(tmp, "train", name)
        clip = os.path.join(tmp, "clip", "tiny_clip.pt" if blocks == 1 else "tiny_clip3.pt")
        argv = [sys.executable, *python_cmd("train"), "--root", os.path.join(tmp, "data"), "--seed", str(SEED),
                "--trainer", trainer, "--dataset-config-file", "configs/datasets/oxford_pets.yaml",
                "--config-file", cfg, "--output-dir", out, "MODEL.BACKBONE.PATH", clip, "DATASET.NUM_SHOTS", "2",
                "DATASET.SUBSAMPLE_CLASSES", "base", *TINY, *FP32, *extra]
        proc, seconds = run(argv, env)
        meta["seconds"][f"train/{name}"] = round(seconds, 1)
        stdout = norm.lines(proc.stdout)
        record = {
            "trainer": trainer,
            "options": [norm.text(a) for a in argv[argv.index("--root"):]],
            "returncode": proc.returncode,
            "steps": parse_steps(stdout),
            "results": json_files(out, ("results.json", "run_status.json"), norm) if os.path.isdir(out) else {},
            "tensorboard": tensorboard_of(out, norm) if os.path.isdir(out) else {},
            "files": list_files(out, norm) if os.path.isdir(out) else [],
            "stdout": stdout,
            "stderr": norm.lines(proc.stderr),
        }
        if os.path.isdir(out):
            for root, dirs, files in os.walk(out):
                ckpts += [(name, os.path.join(root, f)) for f in files if ".pth" in f]
        section[name] = record
        losses = [s["meters"].get("loss", ["-"])[0] for s in record["steps"]]
        log(f"train {name}: rc {proc.returncode}, {seconds:.0f} s, losses {' '.join(losses) or '-'}")
    found = checkpoints_of(sorted(path for _, path in ckpts), norm, env)  # one torch import for all
    for name in section:
        mine = {norm.text(path) for owner, path in ckpts if owner == name}
        section[name]["checkpoints"] = {k: v for k, v in found.items() if k in mine or k == "<error>"}
    return section


def subcommands(help_text):
    """Sub-command names of an argparse program with sub-parsers ({a,b,c} ... in its usage)."""
    lines = help_text.splitlines()
    end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    usage = " ".join(" ".join(lines[:end]).split())
    m = re.search(r"\{([\w,-]+)\} \.\.\.$", usage)
    return m.group(1).split(",") if m else []


def fingerprint_help(norm, python_cmd, meta):
    env = base_env()
    section = {}
    for key in COMMANDS:
        calls = [[]]
        proc, seconds = run([sys.executable, *python_cmd(key), "--help"], env)
        calls += [[sub] for sub in subcommands(proc.stdout)]
        for extra in calls:
            label = " ".join([key, *extra])
            if extra:
                proc, seconds = run([sys.executable, *python_cmd(key), *extra, "--help"], env)
            meta["seconds"][f"help/{label}"] = round(seconds, 1)
            section[label] = {"returncode": proc.returncode, "stdout": help_lines(proc.stdout, norm),
                              "stderr": norm.lines(proc.stderr)}
            log(f"help {label}: rc {proc.returncode}, {len(proc.stdout.splitlines())} lines")
    return section


PROGRESS = re.compile(r"grid: done \d+ running \d+ failed \d+|\|[ ▏▎▍▌▋▊▉█]*\| \d+/\d+ \[")


def fingerprint_benchmark(name, tmp, norm, meta, jobs):
    folder = os.path.join(tmp, "bench", name)
    data, out = os.path.join(folder, "data"), os.path.join(folder, "out")
    os.makedirs(data)
    env = base_env()
    env.update(QUICK="1", SEEDS="1", SHOTS="2", DATA=data, OUTPUT=out, PYTHON=sys.executable, **BENCHMARKS[name])
    if jobs:
        env["JOBS"] = str(jobs)
    proc, seconds = run(["bash", "scripts/mini_benchmark.sh"], env)
    meta["seconds"][f"benchmarks/{name}"] = round(seconds, 1)
    log(f"benchmark {name}: rc {proc.returncode}, {seconds:.0f} s")
    stdout = norm.lines(proc.stdout)
    done = sorted(line for line in stdout if re.match(r"^(done|failed) ", line))
    stderr = []
    for line in proc.stderr.replace("\r", "\n").splitlines():
        if line.strip() and not PROGRESS.search(line):
            stderr.append(norm.text(line.rstrip()))
    record = {
        "env": {k: norm.text(env[k]) for k in ("QUICK", "SEEDS", "SHOTS", "BENCHMARK", "JOBS") if k in env},
        "returncode": proc.returncode,
        "stdout": [line for line in stdout if line not in done],
        "grid_done_sorted": done,
        "stderr": stderr,
    }
    if os.path.isdir(out):
        record["results"] = json_files(out, ("results.json", "run_status.json", "mini_clip.json"), norm)
        tables = {}
        for root, dirs, files in os.walk(out):
            dirs.sort()
            for fname in sorted(files):
                if fname.endswith((".csv", ".md", ".txt")) and "grid_logs" not in root:
                    if fname == "log.txt":
                        continue  # the same text as the grid logs below
                    with open(os.path.join(root, fname), errors="replace") as f:
                        tables[norm.text(os.path.relpath(os.path.join(root, fname), out))] = norm.lines(f.read())
        record["tables"] = dict(sorted(tables.items()))
        logs, steps = {}, {}
        grid_logs = os.path.join(out, "grid_logs")
        for root, dirs, files in os.walk(grid_logs):
            dirs.sort()
            for fname in sorted(files):
                with open(os.path.join(root, fname), errors="replace") as f:
                    lines = norm.lines(f.read())
                rel = os.path.relpath(os.path.join(root, fname), grid_logs)
                logs[rel] = lines
                steps[rel] = parse_steps(lines)
        record["grid_logs"] = dict(sorted(logs.items()))
        record["steps"] = dict(sorted(steps.items()))
        record["tensorboard"] = tensorboard_of(out, norm)
        ckpts = []
        for root, dirs, files in os.walk(out):
            ckpts += [os.path.join(root, f) for f in files if ".pth" in f or f.endswith(".pt")]
        record["checkpoints"] = checkpoints_of(sorted(ckpts), norm, env)
        record["files"] = list_files(out, norm)
        pngs = {}
        for root, dirs, files in os.walk(out):
            for fname in files:
                if fname.endswith(".png"):
                    path = os.path.join(root, fname)
                    pngs[norm.text(os.path.relpath(path, out))] = {"bytes": os.path.getsize(path), "sha256": digest_file(path)}
        record["plots"] = dict(sorted(pngs.items()))
    # the downstream images the benchmark exported under DATA
    exported = {}
    for root, dirs, files in os.walk(data):
        dirs.sort()
        images = sorted(f for f in files if f.endswith(".png"))
        if images:
            h = hashlib.sha256()
            for fname in images:
                h.update(fname.encode() + b"\0" + open(os.path.join(root, fname), "rb").read())
            exported[norm.text(os.path.relpath(root, data))] = {"images": len(images), "sha256": h.hexdigest()}
        for fname in sorted(files):
            if not fname.endswith(".png"):
                path = os.path.join(root, fname)
                exported[norm.text(os.path.relpath(path, data))] = {"bytes": os.path.getsize(path),
                                                                    "sha256": digest_file(path)}
    record["exported_data"] = dict(sorted(exported.items()))
    return record


def git_commit():
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
        return proc.stdout.strip() + (" (uncommitted changes)" if dirty.strip() else "")
    except OSError:
        return "unknown"


def make(args):
    overrides = {}
    for item in args.cmd or []:
        key, _, value = item.partition("=")
        if key not in COMMANDS or not value:
            raise SystemExit(f"error: --cmd {item}: give KEY=ARGS with KEY one of {', '.join(COMMANDS)}")
        overrides[key] = shlex.split(value)
    which = 1 if args.layout == "new" else 0

    def python_cmd(key):
        return overrides.get(key, COMMANDS[key][which])

    sections = args.only or ["train", "help", "benchmarks"]
    tmp = os.path.realpath(tempfile.mkdtemp(prefix="fingerprint-"))
    norm = Normaliser(tmp, REPO)
    meta = {"layout": args.layout, "commit": git_commit(), "python": sys.version.split()[0],
            "commands": {k: " ".join(python_cmd(k)) for k in COMMANDS}, "sections": sections,
            "jobs": args.jobs or "default", "seconds": {}}
    began = time.monotonic()
    result = {"meta": meta}
    try:
        if "train" in sections:
            result["train"] = fingerprint_train(tmp, norm, python_cmd, meta)
        if "help" in sections:
            result["help"] = fingerprint_help(norm, python_cmd, meta)
        if "benchmarks" in sections:
            result["benchmarks"] = {name: fingerprint_benchmark(name, tmp, norm, meta, args.jobs)
                                    for name in (args.benchmarks or BENCHMARKS)}
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    meta["seconds"]["total"] = round(time.monotonic() - began, 1)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1, sort_keys=False, ensure_ascii=False)
        f.write("\n")
    counts = summarise(result)
    log(f"wrote {args.out} in {meta['seconds']['total']:.0f} s: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


def summarise(fp):
    counts = {"loss values": 0, "step lines": 0, "accuracies": 0, "help texts": 0, "results.json files": 0,
              "checkpoints": 0, "tensorboard scalars": 0}

    def walk_results(results):
        for rel, value in results.items():
            if rel.endswith("results.json"):
                counts["results.json files"] += 1
                if isinstance(value, dict) and "accuracy" in value:
                    counts["accuracies"] += 1

    def walk_steps(steps):
        for s in steps:
            counts["step lines"] += 1
            counts["loss values"] += "loss" in s["meters"]

    def walk_tb(tb):
        for tags in tb.values():
            for values in tags.values():
                counts["tensorboard scalars"] += len(values) if isinstance(values, list) else 0

    for record in fp.get("train", {}).values():
        walk_steps(record["steps"])
        walk_results(record["results"])
        walk_tb(record["tensorboard"])
        counts["checkpoints"] += len(record["checkpoints"])
    counts["help texts"] = len(fp.get("help", {}))
    for record in fp.get("benchmarks", {}).values():
        for steps in record.get("steps", {}).values():
            walk_steps(steps)
        walk_results(record.get("results", {}))
        walk_tb(record.get("tensorboard", {}))
        counts["checkpoints"] += len(record.get("checkpoints", {}))
    return counts


# ======================================================================================
# comparing
# ======================================================================================
INVOCATION = [
    (re.compile(r"python (tools|benchmarks)/(\w+)\.py"), r"python -m \1.\2"),
    (re.compile(r"(?<![\w/.-])(tools|benchmarks)/(\w+)\.py"), r"\1.\2"),
]


def equate(value):
    if isinstance(value, dict):
        return {equate_text(k): equate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [equate(v) for v in value]
    if isinstance(value, str):
        return equate_text(value)
    return value


def equate_text(text):
    for pattern, repl in INVOCATION:
        text = pattern.sub(repl, text)
    return text


def diff(old, new, path, out, ignore):
    if ignore and ignore.search(path):
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            sub = f"{path}/{key}" if path else str(key)
            if key not in new:
                if not (ignore and ignore.search(sub)):
                    out.append((sub, old[key], "<missing>"))
            elif key not in old:
                if not (ignore and ignore.search(sub)):
                    out.append((sub, "<missing>", new[key]))
            else:
                diff(old[key], new[key], sub, out, ignore)
    elif isinstance(old, list) and isinstance(new, list) and all(isinstance(x, str) for x in old + new) \
            and (len(old) > 1 or len(new) > 1):
        if old != new:  # text: the differing lines, by line number
            import difflib

            for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
                if tag != "equal":
                    out.append((f"{path}[lines {i1 + 1}-{i2} -> {j1 + 1}-{j2}]", old[i1:i2], new[j1:j2]))
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            diff(a, b, f"{path}[{i}]", out, ignore)
    elif old != new or type(old) is not type(new):
        out.append((path, old, new))


def compare(args):
    with open(args.compare[0]) as f:
        old = json.load(f)
    with open(args.compare[1]) as f:
        new = json.load(f)
    for fp, label in ((old, "old"), (new, "new")):
        meta = fp.get("meta", {})
        print(f"{label}: layout {meta.get('layout')}, commit {meta.get('commit')}, "
              f"{meta.get('seconds', {}).get('total', '?')} s")
    old.pop("meta", None)
    new.pop("meta", None)
    if args.equate_invocations:
        old, new = equate(old), equate(new)
    ignore = re.compile(args.ignore) if args.ignore else None
    found = []
    diff(old, new, "", found, ignore)
    for path, a, b in found:
        print(f"{path}\n  old: {json.dumps(a, ensure_ascii=False)[:2000]}\n  new: {json.dumps(b, ensure_ascii=False)[:2000]}")
    if found:
        print(f"{len(found)} difference(s)")
        return 1
    print("identical")
    return 0


def main():
    global REPO
    parser = argparse.ArgumentParser(description="Behaviour fingerprint of the repository (see the module docstring).")
    parser.add_argument("--out", help="write the fingerprint to this JSON file")
    parser.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"), help="compare two fingerprints; exit 1 if they differ")
    parser.add_argument("--layout", choices=("old", "new"), default="old",
                        help="old: python tools/X.py; new: python -m tools.X (the keys of COMMANDS stay)")
    parser.add_argument("--cmd", nargs="+", metavar="KEY=ARGS",
                        help="another invocation for a command, e.g. parse_test_res='-m tools.parse_test_res'")
    parser.add_argument("--only", nargs="+", choices=("train", "help", "benchmarks"), help="record only these sections")
    parser.add_argument("--benchmarks", nargs="+", choices=tuple(BENCHMARKS), help="only these benchmarks")
    parser.add_argument("--jobs", type=int, help="JOBS for mini_benchmark.sh (default: the script's, 2)")
    parser.add_argument("--repo", default=REPO,
                        help="the checkout to fingerprint (default: the one holding this file, %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--ignore", help="--compare: skip key paths matching this regular expression")
    parser.add_argument("--equate-invocations", action="store_true",
                        help="--compare: read 'python tools/X.py' and 'python -m tools.X' as the same text")
    args = parser.parse_args()
    if args.compare:
        sys.exit(compare(args))
    if not args.out:
        parser.error("give --out PATH (or --compare OLD NEW)")
    REPO = os.path.realpath(args.repo)
    if not os.path.isfile(os.path.join(REPO, "train.py")):
        parser.error(f"--repo {args.repo}: no train.py there")
    args.out = os.path.abspath(args.out)
    make(args)


if __name__ == "__main__":
    main()
