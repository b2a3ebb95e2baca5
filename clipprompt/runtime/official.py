"""Checkpoints written by the official code (CoOp, CoCoOp, KgCoOp, ProGrad, MaPLe, PromptSRC), turned into ours.

The official trainers save with Dassl: ``OUT/<model name>/model.pth.tar-<epoch>`` (or ``model-best.pth.tar``),
a dict with ``state_dict``, ``epoch``, ``optimizer``, ``scheduler`` and ``val_result``. The model name and
what the state dict holds differ per repository (:data:`FORMATS`): CoOp, CoCoOp, KgCoOp and ProGrad register
their prompt learner alone (keys ``ctx``, ...), MaPLe and PromptSRC (and IVLP) the whole model, frozen CLIP
included (keys ``prompt_learner.ctx``, ``image_encoder.*``, ...). The official ``load_model`` drops the
class-dependent ``token_prefix``/``token_suffix``; so does :func:`convert`.

:func:`parameter_names` is the one map from the official model's learnable parameters to ours; the
converter and ``tools/parity_upstream.py forward`` both read it. No Dassl here.
"""

import collections
import os
import re
from dataclasses import dataclass, field

import torch

from clipprompt.errors import UserError
from clipprompt.runtime import checkpoint as ckpt


@dataclass(frozen=True)
class Format:
    """How one official trainer saves: the Dassl model name (the checkpoint's folder) and whether the
    state dict is the prompt learner's alone (its keys then lack the ``prompt_learner.`` prefix)."""

    model_name: str
    whole_model: bool
    unused: tuple = ()  # saved, but not used by the official model's inference: skipped with a note


FORMATS = {
    "CoOp": Format("prompt_learner", False),
    "ProGrad": Format("prompt_learner", False),
    "CoCoOp": Format("prompt_learner", False),
    # KgCoOp's prompt learner also holds a bias vector and a linear layer that its forward never uses
    # (frozen at their random initialisation).
    "KgCoOp": Format("prompt_learner", False, ("prompt_learner.bias_vectors", "prompt_learner.meta_net.linear1.")),
    "MaPLe": Format("MultiModalPromptLearner", True),
    "PromptSRC": Format("VLPromptLearner", True),
}
CONVERTIBLE = tuple(FORMATS)
CLASS_DEPENDENT = ("prompt_learner.token_prefix", "prompt_learner.token_suffix", "prompt_learner.token_midfix")
# Frozen CLIP inside a whole-model state dict -> the key of the same tensor in a CLIP state dict.
FROZEN_CLIP = (("prompt_learner.ZS_image_encoder.", "visual."), ("image_encoder.", "visual."),
               ("text_encoder.", ""), ("logit_scale", "logit_scale"))


def parameter_names(trainer, text_depth=1, vision_depth=0):
    """``{official parameter name: (our parameter name, index or None)}`` for the official model (its
    ``CustomCLIP``'s names): our deep prompts are one tensor per kind, the official code has one per layer.
    ``text_depth``/``vision_depth``: layers with prompts, the input layer included (MaPLe, PromptSRC, IVLP)."""
    if trainer in ("CoOp", "KgCoOp", "ProGrad"):
        return {"prompt_learner.ctx": ("prompt_learner.ctx", None)}
    if trainer == "CoCoOp":
        names = {"prompt_learner.ctx": ("prompt_learner.ctx", None)}
        for ours, theirs in (("0", "linear1"), ("2", "linear2")):
            for kind in ("weight", "bias"):
                names[f"prompt_learner.meta_net.{theirs}.{kind}"] = (f"meta_net.{ours}.{kind}", None)
        return names
    names = {"prompt_learner.ctx": ("prompt_learner.ctx", None)}
    if trainer == "MaPLe":
        for i in range(text_depth - 1):
            names[f"prompt_learner.compound_prompts_text.{i}"] = ("prompt_learner.text_deep", i)
        for i in range(text_depth):
            theirs = "prompt_learner.proj" if i == 0 else f"prompt_learner.compound_prompt_projections.{i - 1}"
            for kind in ("weight", "bias"):
                names[f"{theirs}.{kind}"] = (f"prompt_learner.coupling.{i}.{kind}", None)
        return names
    if trainer not in ("PromptSRC", "IVLP"):
        raise ValueError(f"no official parameter names for {trainer}")
    for i in range(text_depth - 1):
        names[f"text_encoder.transformer.resblocks.{i + 1}.VPT_shallow"] = ("prompt_learner.text_deep", i)
    if vision_depth:
        names["image_encoder.VPT"] = ("prompt_learner.vision_first", None)
    for i in range(vision_depth - 1):
        names[f"image_encoder.transformer.resblocks.{i + 1}.VPT_shallow"] = ("prompt_learner.vision_deep", i)
    return names


def model_parameter_names(trainer, model):
    """:func:`parameter_names` at the prompt depths of our ``model``."""
    learner = model.prompt_learner
    return parameter_names(trainer, getattr(learner, "text_depth", 1), getattr(learner, "vision_depth", 0))


def pick(tensors, where):
    """The tensor at ``where`` (our name, index or None) in ``tensors``."""
    name, index = where
    value = tensors[name]
    return None if value is None else (value if index is None else value[index])


# ----- reading an official checkpoint ------------------------------------------------------------

# Plain containers torch's safe loader may build for real; every other class a Dassl checkpoint pickles
# (the optimiser's and the warm-up scheduler's objects) is read into an inert stand-in: only the
# state dict is used, and no code of the file's choosing runs.
_REAL_GLOBALS = {"builtins.dict": dict, "builtins.list": list, "builtins.set": set, "builtins.tuple": tuple,
                 "collections.defaultdict": collections.defaultdict, "collections.OrderedDict": collections.OrderedDict}


def _stand_in(qualified_name):
    def absorb(self, *args, **kwargs):
        pass

    return type(qualified_name.rpartition(".")[2], (), {"__init__": absorb, "__setstate__": absorb})


def read_official(path):
    """The dict an official Dassl trainer saved at ``path``; damaged or foreign files are one-line errors."""
    if not os.path.isfile(path):
        raise UserError(f"--official {path}: no such file")
    try:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            if "Unsupported global" not in str(exc):
                raise
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            stand_ins = [(_REAL_GLOBALS.get(name) or _stand_in(name), name) for name in names]
            with torch.serialization.safe_globals(stand_ins):
                payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ckpt.unreadable(path, exc) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("state_dict"), dict):
        raise UserError(f"--official {path} is not a checkpoint of the official code (no state_dict entry)")
    if "trainer" in payload and "format_version" in payload:
        raise UserError(f"--official {path} is already a checkpoint of this toolkit (trained with "
                        f"{payload['trainer']}); evaluate it with train.py --eval-only --model-dir directly")
    return payload


def find_official(path, trainer, epoch=None):
    """The checkpoint file for ``--official path``: the file itself, or in an official output folder
    (``path/<model name>/``, or the model-name folder itself) the one of ``epoch`` (default: the last)."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise UserError(f"--official {path}: no such file or folder")
    name = FORMATS[trainer].model_name
    folder = os.path.join(path, name)
    if not os.path.isdir(folder):
        others = sorted({f.model_name for f in FORMATS.values()} - {name})
        found = [n for n in others if os.path.isdir(os.path.join(path, n))]
        if found:
            owners = [t for t, f in FORMATS.items() if f.model_name == found[0]]
            raise UserError(f"--official {path} holds {found[0]}/ (the folder of a {' or '.join(owners)} checkpoint), "
                            f"but --trainer {trainer} saves into {name}/")
        folder = path  # perhaps the model-name folder itself
    if epoch == ckpt.BEST:
        best = os.path.join(folder, "model-best.pth.tar")
        if not os.path.isfile(best):
            raise UserError(f"--official {path}: no model-best.pth.tar in {folder}")
        return best
    epochs = ckpt.saved_epochs(os.path.dirname(folder), os.path.basename(folder))
    if not epochs:
        raise UserError(f"--official {path}: no model.pth.tar-<epoch> in {folder} (pass the checkpoint file, or the "
                        f"official output folder that holds {name}/)")
    if epoch is None:
        epoch = epochs[-1]
    elif epoch not in epochs:
        raise UserError(f"--official {path}: no checkpoint of epoch {epoch} in {folder}; saved: "
                        f"{', '.join(map(str, epochs))} (check --epoch)")
    return os.path.join(folder, f"model.pth.tar-{epoch}")


# ----- what the checkpoint holds -----------------------------------------------------------------

def detect(keys):
    """``(trainer whose format these keys are, the telling key pattern)`` for an official state dict's
    keys (with the ``prompt_learner.`` prefix), or ``(None, None)``."""
    keys = list(keys)

    def has(pattern):
        return any(re.fullmatch(pattern, k) for k in keys)

    if has(r"prompt_learner\.compound_prompts_text\..*|prompt_learner\.proj\..*"):
        return "MaPLe", "compound_prompts_text.*"
    if has(r".*VPT(_shallow)?"):
        return "PromptSRC", "VPT_shallow"
    if has(r"prompt_learner\.meta_net\.linear2\..*"):
        return "CoCoOp", "meta_net.linear2.*"
    if has(r"prompt_learner\.bias_vectors"):
        return "KgCoOp", "bias_vectors"
    if has(r"prompt_learner\.ctx"):
        return "CoOp", "ctx"
    return None, None


def _formats_of(trainer):
    """The detected formats accepted for ``trainer``: ProGrad saves exactly as CoOp does."""
    return {"ProGrad": ("CoOp",)}.get(trainer, (trainer,))


def _depths(trainer, keys):
    """(text depth, vision depth) of the prompts in an official state dict's keys."""
    def count(pattern):
        return sum(1 for k in keys if re.fullmatch(pattern, k))

    if trainer == "MaPLe":
        return 1 + count(r"prompt_learner\.compound_prompts_text\.\d+"), 0
    if trainer == "PromptSRC":
        vision = (1 + count(r"image_encoder\.transformer\.resblocks\.\d+\.VPT_shallow")) if "image_encoder.VPT" in keys else 0
        return 1 + count(r"text_encoder\.transformer\.resblocks\.\d+\.VPT_shallow"), vision
    return 1, 0


@dataclass
class Expected:
    """What our configuration builds, in the official checkpoint's terms: prompt tokens and depths, each
    with the key that sets it (:func:`expected_from_options`)."""

    config_key: str
    n_ctx: int
    n_ctx_hint: object  # n -> the overrides that make a checkpoint's n context tokens fit
    text_depth: int = 1
    text_depth_key: str = ""
    n_ctx_vision: int = 0
    vision_depth: int = 0
    vision_keys: tuple = ()  # (N_CTX_VISION key, PROMPT_DEPTH_VISION key)
    csc: bool = False


def expected_from_options(trainer, config_key, options):
    """:class:`Expected` for our ``options`` of ``trainer`` (no CLIP needed: the token count of CTX_INIT
    comes from the tokenizer)."""
    from clipprompt.prompts.soft import class_name_length

    key = f"TRAINER.{config_key}."
    if trainer in ("CoOp", "CoCoOp", "KgCoOp", "ProGrad"):
        ctx_init = options.ctx_init.replace("_", " ").strip()
        csc = getattr(options, "csc", False)
        if ctx_init:  # CoOp's rule: the whole phrase is the context, N_CTX is not read
            return Expected(config_key, class_name_length(ctx_init), lambda n: f"set {key}CTX_INIT '' and {key}N_CTX {n}",
                            csc=csc)
        return Expected(config_key, options.n_ctx, lambda n: f"set {key}N_CTX {n}", csc=csc)
    # Deep prompts learn the first N tokens of CTX_INIT (the official code: N <= 4 with an init phrase);
    # more tokens than the phrase has need random ones, CTX_INIT ''.
    init_tokens = class_name_length(options.ctx_init.replace("_", " ").strip()) if options.ctx_init.strip() else 0
    n_key = "N_CTX" if trainer == "MaPLe" else "N_CTX_TEXT"

    def hint(n):
        return f"set {key}{n_key} {n}" + (f" and {key}CTX_INIT ''" if init_tokens and n > init_tokens else "")

    if trainer == "MaPLe":
        return Expected(config_key, options.n_ctx, hint, options.prompt_depth, key + "PROMPT_DEPTH")
    vision_depth = options.prompt_depth_vision if options.n_ctx_vision else 0
    return Expected(config_key, options.n_ctx_text, hint, options.prompt_depth_text,
                    key + "PROMPT_DEPTH_TEXT", options.n_ctx_vision, vision_depth,
                    (key + "N_CTX_VISION", key + "PROMPT_DEPTH_VISION"))


@dataclass
class Conversion:
    """Our state dict from an official one, and what was done with each official entry."""

    state_dict: dict
    converted: list  # (official name, our name and index, shape)
    detected: str  # the format found (e.g. "PromptSRC" or "IVLP (PromptSRC's format without its frozen copy)")
    dropped_class_dependent: list = field(default_factory=list)
    unused: list = field(default_factory=list)
    frozen_clip: dict = field(default_factory=dict)  # CLIP key -> tensor (whole-model formats)


def convert(trainer, state_dict, expected, source="--official"):
    """Our ``trainable_state_dict`` entries from the official ``state_dict`` of ``trainer``; every entry is
    accounted for (converted, class-dependent and dropped, frozen CLIP, or unused by the official model),
    else a one-line :class:`UserError` naming it."""
    fmt = FORMATS[trainer]
    full = {k if fmt.whole_model else f"prompt_learner.{k}": v for k, v in state_dict.items()}
    found, telling = detect(full)
    if found is None:
        sample = ", ".join(sorted(state_dict)[:4])
        raise UserError(f"{source}: no prompt learner of the official code in its state dict (keys: {sample}, ...)")
    if found not in _formats_of(trainer):
        raise UserError(f"keys of a {found} checkpoint ({telling}) in {source}, but --trainer {trainer}")
    detected = found
    if trainer == "PromptSRC" and not any(k.startswith("prompt_learner.ZS_image_encoder.") for k in full):
        detected = "IVLP (PromptSRC's prompts without its frozen image tower copy; the same inference)"
    text_depth, vision_depth = _depths(trainer, full)
    names = parameter_names(trainer, text_depth, vision_depth)
    missing = [n for n in names if n not in full]
    if missing:
        shown = missing[0] if fmt.whole_model else missing[0][len("prompt_learner."):]
        raise UserError(f"{source}: {shown} is missing from a {found} checkpoint; is the file complete?")
    _check_counts(trainer, full, expected, text_depth, vision_depth)

    pieces = collections.defaultdict(dict)
    converted = []
    for theirs, (ours, index) in names.items():
        value = full[theirs]
        pieces[ours][index] = value
        converted.append((theirs if fmt.whole_model else theirs[len("prompt_learner."):],
                          ours if index is None else f"{ours}[{index}]", tuple(value.shape)))
    ours_state = {}
    for ours, parts in pieces.items():
        ours_state[ours] = parts[None] if None in parts else torch.stack([parts[i] for i in sorted(parts)])
    result = Conversion(ours_state, converted, detected)
    for key, value in full.items():
        if key in names:
            continue
        shown = key if fmt.whole_model else key[len("prompt_learner."):]
        if key.startswith(CLASS_DEPENDENT):
            result.dropped_class_dependent.append(shown)
        elif fmt.unused and key.startswith(fmt.unused):
            result.unused.append(shown)
        elif fmt.whole_model and key.startswith(tuple(prefix for prefix, _ in FROZEN_CLIP)):
            prefix, clip_prefix = next((p, c) for p, c in FROZEN_CLIP if key.startswith(p))
            result.frozen_clip.setdefault(clip_prefix + key[len(prefix):], []).append((key, value))
        else:
            raise UserError(f"{source}: unexpected entry {shown!r} in a {found} checkpoint (another version of "
                            "the official code?)")
    return result


def _shape(value):
    return "(" + ", ".join(map(str, value.shape)) + ")"


def _check_counts(trainer, full, expected, text_depth, vision_depth):
    """The checkpoint's prompt tokens and depths against our configuration's: one line naming the key to set."""
    ctx = full["prompt_learner.ctx"]
    if ctx.dim() == 3 and trainer in ("CoOp", "KgCoOp", "ProGrad"):
        raise UserError(f"ctx is {_shape(ctx)}: class-specific context (CSC), whose class order a checkpoint does "
                        "not record; the converter takes shared context only")
    rows = ctx.shape[-2]
    if rows != expected.n_ctx:
        want = f"({expected.n_ctx}, {ctx.shape[-1]})"
        raise UserError(f"ctx is {_shape(ctx)}, our {trainer} config expects {want}: "
                        + expected.n_ctx_hint(rows))
    if expected.csc:
        raise UserError(f"ctx is {_shape(ctx)} (shared context), our {trainer} config has "
                        f"TRAINER.{expected.config_key}.CSC True: set it False")
    if text_depth != expected.text_depth:
        raise UserError(f"the checkpoint has text prompts in {text_depth} layers, our {trainer} config expects "
                        f"{expected.text_depth}: set {expected.text_depth_key} {text_depth}")
    if trainer != "PromptSRC":
        return
    n_key, depth_key = expected.vision_keys
    first = full.get("image_encoder.VPT")
    n_vision = 0 if first is None else first.shape[0]
    if n_vision != expected.n_ctx_vision or (n_vision and vision_depth != expected.vision_depth):
        if n_vision != expected.n_ctx_vision:
            shown = "no vision prompts" if first is None else f"image_encoder.VPT is {_shape(first)}"
            raise UserError(f"{shown}, our PromptSRC config expects {expected.n_ctx_vision} vision tokens: "
                            f"set {n_key} {n_vision}")
        raise UserError(f"the checkpoint has vision prompts in {vision_depth} layers, our PromptSRC config expects "
                        f"{expected.vision_depth}: set {depth_key} {vision_depth}")


FROZEN_TOLERANCE = 0.01  # of each tensor's largest magnitude; see compare_frozen_clip


def compare_frozen_clip(frozen, clip_state, clip_path):
    """``(tensors compared, largest relative difference)`` of a whole-model checkpoint's frozen CLIP against
    the CLIP file the user evaluates with; a difference beyond ``FROZEN_TOLERANCE`` is a one-line error (the
    official prompts were trained on another CLIP). Not exact equality: the official loader builds CLIP in
    fp16, and PromptSRC's aggregation sums Gaussian-weighted copies of the whole state dict, the frozen
    weights included, which moves them by rounding (far less than another CLIP would differ)."""
    compared, worst = 0, 0.0
    for clip_key, entries in sorted(frozen.items()):
        if clip_key not in clip_state:
            raise UserError(f"--official holds frozen CLIP weights ({entries[0][0]}) that --clip {clip_path} lacks "
                            f"({clip_key}): another CLIP architecture")
        mine = clip_state[clip_key].detach().float()
        for official_key, value in entries:
            compared += 1
            if tuple(mine.shape) != tuple(value.shape):
                raise UserError(f"frozen CLIP weight {official_key} in --official is {_shape(value)}, {clip_key} of "
                                f"--clip {clip_path} is {_shape(mine)}: the official model used another CLIP")
            scale = float(mine.abs().max()) or 1.0
            gap = float((value.detach().float() - mine).abs().max()) / scale
            if gap > FROZEN_TOLERANCE:
                raise UserError(f"frozen CLIP weight {official_key} in --official differs from {clip_key} of --clip "
                                f"{clip_path} by {gap:.3g} of its scale: the official model used another CLIP")
            worst = max(worst, gap)
    return compared, worst
