"""The official code's side of ``python -m tools.parity_upstream``: runs an official trainer unmodified.

Two entry points (and ``main``'s timing mode for ``speed``), each run by ``tools/parity_upstream.py`` in a
process of its own with ``PYTHONPATH`` = the official code root, its Dassl tree, then this folder (imported by its bare name): it imports nothing of
``clipprompt`` (the official ``trainers``, ``clip`` and Dassl come first on its import path, so they never mix
with ours; :func:`official_clip` checks where they came from).

* :func:`main` (``forward``): one step. JOB (``torch.save``, written by the tool): the code root, the Dassl
  tree, the CLIP file, the config values, the class names, the images, the learnable parameters under the
  official names and the short schedule. OUT: logits, loss terms, gradients, the aggregated prompts and the
  shims it used. The trainer object is made without Dassl's ``__init__`` (no data loaders):
  ``TrainerBase.__init__``, then ``cfg``, ``device``, ``dm.dataset.classnames`` and the official
  ``build_model()``.
* :func:`train_main` (``upstream`` and ``train``): the official ``train.py`` itself, run as ``__main__`` with the given
  arguments (a whole training run or evaluation), after the shims below; it prints the shims it used at
  the end of its log.

The official code runs unmodified. At run time, in this process only:

* ``clip._MODELS[name]`` / ``clip._download``: the official ``load_clip_to_cpu`` downloads OpenAI's
  weights; ``_download`` returns the tool's CLIP file instead (its own loader then reads it).
* ``torch.Tensor.half`` / ``torch.nn.Module.half`` return their input unchanged (each call site is
  counted and reported). In an fp32 run these are the only fp16 casts: ``clip.model.convert_weights``
  (the weights, already rounded through fp16 by the tool, so the cast is exact and the fp32 reload the
  trainers do is a no-op), MaPLe's ``proj.half()``, the prompts cast before ``torch.cat`` in the forked
  ``clip/model.py`` and PromptSRC's ``fixed_embeddings.half()``. Each would only round an fp32 tensor to
  fp16 (or make an fp32 run fail on mixed dtypes); the identity leaves the fp32 computation.
* ``torch.Tensor.cuda`` / ``torch.nn.Module.cuda`` return their input (counted too): everything runs
  on the CPU, where a device move changes no value.
* ``forward`` only: the official trainer's ``F`` (``torch.nn.functional``) is wrapped so that the values of
  ``cross_entropy``, ``l1_loss`` and ``kl_div`` are recorded as they pass (PromptSRC's terms); forward
  hooks record the model's (KgCoOp's score) and ProGrad's criterion's outputs. Nothing is changed.
* ``upstream`` only, where the run asks for it (the tool passes them):
  - ``CUSTOM_TEMPLATES["OxfordPets"]`` of the official KgCoOp and ProGrad trainer modules is set to the
    benchmark dataset's template. The official code reads the benchmark through its ``OxfordPets`` class,
    and these two trainers take their hand-crafted prompt (KgCoOp's guidance, ProGrad's zero-shot teacher,
    and ProGrad's context initialisation: the template's words before "{}") from that table by dataset name;
    the pets template would give them a prompt ours never sees (and ProGrad's 8 words do not fit 4 tokens).
  - MaPLe's prompt widths (MaPLe issue #73): its ``trainers/maple.py`` hard-codes ViT-B/16's widths, 768
    for the coupling layers' output (``nn.Linear(ctx_dim, 768)``, the image tower's width) and 512 for the
    deep text prompts (``torch.empty(n_ctx, 512)``, the text tower's width). In that module only, ``nn.Linear``
    with 768 outputs is built with the CLIP's image width instead and ``torch.empty`` with a last size of
    512 with its text width (counted and reported like the other shims). With ViT-B/16's widths nothing
    changes.

Timing mode (``python -m tools.parity_upstream speed``; JOB's ``mode`` is ``"speed"``): the same shims
and the same build, at the official initialisation (no parameters given), then warm-up steps and timed
steps of the official ``forward_backward`` (forward, loss, backward, SGD step), one thread. OUT: per
timed step the process CPU time, the wall time and the CPU time spent in each tower's forward
(:func:`timed` around the official modules' ``forward``). :func:`timed` and :func:`time_steps` time our
side too (the tool imports them from here).
"""

import collections
import importlib
import os
import sys
import types

TRAINERS = {  # --trainer: (module under trainers/, class)
    "CoOp": ("coop", "CoOp"), "CoCoOp": ("cocoop", "CoCoOp"), "KgCoOp": ("kgcoop", "KgCoOp"),
    "ProGrad": ("prograd", "ProGrad"), "MaPLe": ("maple", "MaPLe"), "PromptSRC": ("promptsrc", "PromptSRC"),
    "IVLP": ("independentVL", "IVLP"),
}
RECORDED = ("cross_entropy", "l1_loss", "kl_div")
# Timing mode: the official modules whose forward is timed, by what they are (attribute paths from the
# trainer's model; a path the trainer lacks is skipped). PromptSRC keeps a second copy of the image tower
# for its frozen features.
OFFICIAL_PARTS = (("text tower", "text_encoder"), ("image tower", "image_encoder"),
                  ("frozen image tower", "prompt_learner.ZS_image_encoder"))


def install_shims(code_root, counts):
    import torch

    def site():
        frame = sys._getframe(2)
        path = frame.f_code.co_filename
        if path.startswith(code_root):
            path = os.path.relpath(path, code_root)
        return f"{path}:{frame.f_lineno}"

    def identity(name):
        def shim(self, *args, **kwargs):
            counts[f"{name} at {site()}"] += 1
            return self
        return shim

    torch.Tensor.half = identity("Tensor.half")
    torch.nn.Module.half = identity("Module.half")
    torch.Tensor.cuda = identity("Tensor.cuda")
    torch.nn.Module.cuda = identity("Module.cuda")


class RecordingFunctional:
    """``torch.nn.functional`` with the values of the loss functions in RECORDED appended to ``log``."""

    def __init__(self, real, log):
        self._real, self._log = real, log

    def __getattr__(self, name):
        fn = getattr(self._real, name)
        if name not in RECORDED:
            return fn

        def recorded(*args, **kwargs):
            value = fn(*args, **kwargs)
            self._log.append((name, value.detach().clone()))
            return value
        return recorded


def official_clip(code_root, dassl, backbone, clip_file):
    """Check that the official ``clip``, Dassl and ``trainers`` are imported (not ours), and make the official
    ``load_clip_to_cpu`` read ``clip_file`` for ``backbone`` instead of downloading OpenAI's weights."""
    from clip import clip as upstream_clip

    for name, package in (("clip", upstream_clip), ("dassl", importlib.import_module("dassl")),
                          ("trainers", importlib.import_module("trainers"))):
        origin = os.path.realpath(package.__file__)
        if not origin.startswith((code_root, dassl)):
            raise SystemExit(f"error: imported {name} from {origin}, not from {code_root} or {dassl}")
    upstream_clip._MODELS[backbone] = "parity-upstream://clip.pt"
    upstream_clip._download = lambda url, root=None: clip_file


def build(job, module, classnames):
    import torch
    from dassl.config import get_cfg_default
    from dassl.engine.trainer import TrainerBase

    train = importlib.import_module("train")
    cfg = get_cfg_default()
    train.extend_cfg(cfg)
    for key, value in job["cfg"]:  # set as given (upstream's CTX_INIT defaults to False, a str is wanted)
        *path, leaf = key.split(".")
        node = cfg
        for part in path:
            node = node[part]
        if leaf not in node:
            raise SystemExit(f"error: the official config has no {key}")
        node[leaf] = value
    cls = getattr(module, TRAINERS[job["trainer"]][1])
    trainer = cls.__new__(cls)
    TrainerBase.__init__(trainer)
    trainer.cfg = cfg
    trainer.device = torch.device("cpu")
    trainer.dm = types.SimpleNamespace(dataset=types.SimpleNamespace(classnames=list(classnames)))
    trainer.check_cfg(cfg)
    trainer.build_model()
    if "params" not in job:  # timing mode: the official initialisation
        return trainer
    params = dict(trainer.model.named_parameters())
    trainable = sorted(n for n, p in params.items() if p.requires_grad)
    if trainable != sorted(job["params"]):
        raise SystemExit(f"error: the official trainable parameters {trainable} are not the ones given "
                         f"{sorted(job['params'])}")
    with torch.no_grad():
        for name, value in job["params"].items():
            if params[name].shape != value.shape:
                raise SystemExit(f"error: {name}: official shape {tuple(params[name].shape)}, ours {tuple(value.shape)}")
            params[name].copy_(value)
    return trainer


def trainable_grads(trainer):
    return {n: (p.grad.detach().clone() if p.grad is not None else None)
            for n, p in trainer.model.named_parameters() if p.requires_grad}


def timed(owner, attr, name, totals):
    """Replace ``owner.<attr>`` (a method, or a module's ``forward``) by a wrapper that adds the process CPU
    time of each call to ``totals[name]``."""
    import time

    inner = getattr(owner, attr)

    def wrapper(*args, **kwargs):
        start = time.process_time()
        try:
            return inner(*args, **kwargs)
        finally:
            totals[name] += time.process_time() - start
    setattr(owner, attr, wrapper)


def time_steps(step, warmup, steps, totals):
    """Run ``step`` ``warmup`` times, then ``steps`` timed times; per timed step a dict of the process CPU
    time ("cpu"), the wall time ("wall") and the CPU seconds ``totals`` gathered during it (by part)."""
    import time

    for _ in range(warmup):
        step()
    rows = []
    for _ in range(steps):
        totals.clear()
        cpu, wall = time.process_time(), time.perf_counter()
        step()
        rows.append({"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall, "parts": dict(totals)})
    return rows


def speed(job, module, counts):
    """Timing mode: the official ``forward_backward`` on one batch, ``job["warmup"]`` + ``job["steps"]`` times."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    trainer = build(job, module, job["base"])
    model = trainer.model
    model.train()
    # Never an epoch's last batch: no LR step and no prompt aggregation inside the timed steps (both run
    # once per epoch).
    trainer.epoch, trainer.batch_idx, trainer.num_batches = 0, 0, job["warmup"] + job["steps"] + 2
    totals = collections.defaultdict(float)
    for name, path in OFFICIAL_PARTS:
        owner = model
        for attr in path.split("."):
            owner = getattr(owner, attr, None)
        if owner is not None:
            timed(owner, "forward", name, totals)
    batch = {"img": job["images"], "label": job["labels"]}
    rows = time_steps(lambda: trainer.forward_backward(batch), job["warmup"], job["steps"], totals)
    return {"rows": rows, "text_positions": int(model.tokenized_prompts.shape[-1]), "shims": dict(counts)}


class Substituted:
    """A module seen through one trainer module's global name, with some of its attributes replaced."""

    def __init__(self, real, **replaced):
        self._real, self._replaced = real, replaced

    def __getattr__(self, name):
        return self._replaced[name] if name in self._replaced else getattr(self._real, name)


def widen_maple(module, vision_width, text_width, counts):
    """MaPLe's hard-coded ViT-B/16 widths (768 image, 512 text) -> the CLIP's, in ``module`` only."""
    import torch

    def linear(in_features, out_features, *args, **kwargs):
        if out_features == 768 and vision_width != 768:
            counts[f"trainers/maple.py nn.Linear(..., 768) -> {vision_width} (the CLIP's image width)"] += 1
            out_features = vision_width
        return torch.nn.Linear(in_features, out_features, *args, **kwargs)

    def empty(*size, **kwargs):
        if len(size) == 1 and isinstance(size[0], (tuple, list)):
            size = tuple(size[0])
        if size and size[-1] == 512 and text_width != 512:
            counts[f"trainers/maple.py torch.empty(..., 512) -> {text_width} (the CLIP's text width)"] += 1
            size = (*size[:-1], text_width)
        return torch.empty(*size, **kwargs)

    module.nn = Substituted(module.nn, Linear=linear)
    module.torch = Substituted(module.torch, empty=empty)


def enter_official(spec):
    """Into the official code root of ``spec`` (a job or a train spec: code_root, dassl, backbone, clip,
    trainer), with the shims installed and the official clip pointed at the CLIP file; returns the code
    root, the official trainer module and the shims' counter."""
    code_root, dassl = os.path.realpath(spec["code_root"]), os.path.realpath(spec["dassl"])
    os.chdir(code_root)
    counts = collections.Counter()
    install_shims(code_root, counts)
    official_clip(code_root, dassl, spec["backbone"], spec["clip"])
    return code_root, importlib.import_module("trainers." + TRAINERS[spec["trainer"]][0]), counts


def train_main(spec_path, argv):
    """The official ``train.py`` with ``argv``, after the shims; ``spec_path``: JSON written by the tool
    (trainer, code_root, dassl, backbone, clip, and where asked: template, vision_width, text_width)."""
    import json
    import runpy

    with open(spec_path) as f:
        spec = json.load(f)
    code_root, module, counts = enter_official(spec)
    if spec.get("template"):
        module.CUSTOM_TEMPLATES["OxfordPets"] = spec["template"]
        counts[f"{module.__name__}.CUSTOM_TEMPLATES['OxfordPets'] = {spec['template']!r}"] += 1
    if spec["trainer"] == "MaPLe" and "vision_width" in spec:
        widen_maple(module, spec["vision_width"], spec["text_width"], counts)
    sys.argv = [os.path.join(code_root, "train.py"), *argv]
    runpy.run_path(sys.argv[0], run_name="__main__")
    for site, count in sorted(counts.items()):
        print(f"parity shim: {site} x{count}")


def main(job_path, out_path):
    import torch

    job = torch.load(job_path, weights_only=True)
    _, module, counts = enter_official(job)
    if job.get("mode") == "speed":
        torch.save(speed(job, module, counts), out_path)
        return
    calls = []
    module.F = RecordingFunctional(module.F, calls)
    out = {"shims": None}
    images, labels = job["images"], job["labels"]

    torch.manual_seed(0)
    trainer = build(job, module, job["base"])
    model = trainer.model
    model.eval()
    with torch.no_grad():
        out["logits_base"] = trainer.model_inference(images).float()
    outputs = []
    model.register_forward_hook(lambda m, i, o: outputs.append(o))
    criterion = getattr(trainer, "criterion", None)
    criterion_out = []
    if isinstance(criterion, torch.nn.Module):
        criterion.register_forward_hook(lambda m, i, o: criterion_out.append((i, o)))
    model.train()
    trainer.batch_idx, trainer.num_batches, trainer.epoch = 0, 2, 0  # not an epoch's last batch
    calls.clear()
    summary = trainer.forward_backward({"img": images, "label": labels})
    out["summary"] = {k: float(v) for k, v in summary.items()}
    out["grads"] = trainable_grads(trainer)
    out["calls"] = [(name, value) for name, value in calls]
    first = outputs[0] if isinstance(outputs[0], tuple) else (outputs[0],)
    out["model_outputs"] = [o.detach().clone() if torch.is_tensor(o) else o for o in first]
    if criterion_out:
        inputs, values = criterion_out[0]
        out["criterion_inputs"] = [o.detach().clone() for o in inputs]
        out["criterion"] = [o.detach().clone() for o in values]
    templates = getattr(module, "IMAGENET_TEMPLATES", None)
    out["templates"] = list(templates) if templates is not None and job["trainer"] == "PromptSRC" else []

    trainer = build(job, module, job["new"])
    trainer.model.eval()
    with torch.no_grad():
        out["logits_new"] = trainer.model_inference(job["new_images"]).float()

    schedule = job.get("schedule") or {}
    if schedule:
        trainer = build(job, module, job["base"])
        trainer.model.train()
        trainer.num_batches = schedule["per_epoch"]
        for step, (image, label) in enumerate(zip(schedule["images"], schedule["labels"])):
            trainer.epoch, trainer.batch_idx = divmod(step, schedule["per_epoch"])
            trainer.forward_backward({"img": image, "label": label})
        params = dict(trainer.model.named_parameters())
        out["after_schedule"] = {name: params[name].detach().clone() for name in job["params"]}
    out["shims"] = dict(counts)
    torch.save(out, out_path)

