"""The one place that turns a backbone name or a local file into a CLIP model."""

import json
import logging
import os
import tempfile
import warnings
import zipfile

import torch

from clipprompt.clip.backbone import (
    OPEN_CLIP_PREFIX,
    OPENAI_PIXEL_MEAN,
    OPENAI_PIXEL_STD,
    SUPPORTED_TEXT_TOWER,
    OpenCLIPBackbone,
)
from clipprompt.clip.openai_clip import import_clip
from clipprompt.errors import UserError
from clipprompt.runtime.files import torch_save_atomic, write_bytes_atomic, write_json_atomic

clip_api = import_clip().clip
build_model, convert_weights = import_clip().model.build_model, import_clip().model.convert_weights

# Keys every OpenAI-layout CLIP state dict has; used to reject other checkpoints early.
_REQUIRED_KEYS = ("visual.proj", "token_embedding.weight", "text_projection", "positional_embedding", "ln_final.weight")
_METADATA_KEYS = ("input_resolution", "context_length", "vocab_size")
_REQUIRED_KEYS_RESNET = ("visual.attnpool.c_proj.weight", "token_embedding.weight", "text_projection")


def available_backbones():
    return list(clip_api.available_models())


def read_clip_state_dict(path):
    """State dict of an OpenAI TorchScript archive or of a plain ``torch.save`` state dict."""
    if not os.path.isfile(path):
        raise UserError(f"CLIP checkpoint not found: {path} (set MODEL.BACKBONE.PATH to an existing file)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            return torch.jit.load(path, map_location="cpu").state_dict()
    except (RuntimeError, ValueError):
        pass  # not TorchScript: try a plain state dict below
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors differ across torch versions
        raise UserError(f"cannot read CLIP checkpoint {path}: not a TorchScript archive or torch state dict ({exc.__class__.__name__})") from None
    if isinstance(state_dict, dict) and isinstance(state_dict.get("state_dict"), dict):
        state_dict = state_dict["state_dict"]
    if not isinstance(state_dict, dict):
        raise UserError(f"{path} does not hold a CLIP state dict (found {type(state_dict).__name__})")
    return state_dict


def tower_blocks(backbone_name, path=""):
    """``(text blocks, image blocks)`` of an OpenAI-layout CLIP file, read without building the model
    (image blocks 0 for a ResNet tower), or None where that is not cheap to know (open_clip names,
    weights not downloaded yet): the prompt depths are then checked when the model is built."""
    if backbone_name.startswith(OPEN_CLIP_PREFIX):
        if path and not os.path.isfile(os.path.expanduser(path)):
            raise UserError(f"open_clip checkpoint not found: {path} (set MODEL.BACKBONE.PATH to an existing file)")
        return None
    if path:
        path = os.path.expanduser(path)
    elif backbone_name in available_backbones():
        path = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(clip_api._MODELS[backbone_name]))
        if not os.path.isfile(path):
            return None
    else:
        return None  # load_clip names the unknown backbone
    keys = read_clip_state_dict(path).keys()

    def count(prefix):
        return len({k[len(prefix):].split(".", 1)[0] for k in keys if k.startswith(prefix)})

    return count("transformer.resblocks."), count("visual.transformer.resblocks.")


def _check_openai_layout(state_dict, path):
    keys = set(state_dict)
    if all(k in keys for k in _REQUIRED_KEYS) or all(k in keys for k in _REQUIRED_KEYS_RESNET):
        return
    missing = [k for k in _REQUIRED_KEYS if k not in keys]
    raise UserError(f"{path} is not a CLIP checkpoint in OpenAI layout (missing {', '.join(missing[:3])})")


def load_clip(backbone_name, path="", download_root=None, precision="fp32", pretrained="", random_weights=False):
    """Build a frozen, eval-mode CLIP on the CPU.

    ``path`` (``MODEL.BACKBONE.PATH``) wins over ``backbone_name`` and needs no
    internet; otherwise the name is one of ``clip.available_models()`` and the
    weights come through clip's download cache. ``precision`` "fp16" keeps
    OpenAI's half-precision layers (as CoOp does on a GPU); anything else is fp32.
    ``open_clip:<arch>`` names build open_clip's model (see :func:`load_open_clip`;
    ``pretrained`` is ``MODEL.BACKBONE.PRETRAINED``; ``random_weights`` lets an open_clip model
    without either stay random, for speed benchmarks only).
    """
    if backbone_name.startswith(OPEN_CLIP_PREFIX):
        model = load_open_clip(backbone_name[len(OPEN_CLIP_PREFIX):], path, pretrained, download_root, precision,
                               random_weights=random_weights)
        return _frozen(model)
    if pretrained:
        raise UserError(f"MODEL.BACKBONE.PRETRAINED {pretrained!r} is for open_clip backbones (MODEL.BACKBONE.NAME "
                        f"open_clip:<arch>); OpenAI's {backbone_name} takes its weights from its name or MODEL.BACKBONE.PATH")
    if path:
        path = os.path.expanduser(path)
    else:
        if backbone_name not in available_backbones():
            raise UserError(
                f"unknown CLIP backbone {backbone_name!r} in MODEL.BACKBONE.NAME; "
                f"use one of {', '.join(available_backbones())} or set MODEL.BACKBONE.PATH to a local file"
            )
        root = download_root or os.path.expanduser("~/.cache/clip")
        try:
            path = clip_api._download(clip_api._MODELS[backbone_name], root)
        except (OSError, RuntimeError) as exc:  # no network (URLError is an OSError), or a bad checksum
            reason = str(getattr(exc, "reason", exc)).splitlines()[0] if str(exc) else exc.__class__.__name__
            raise UserError(
                f"cannot download the {backbone_name} weights into {root} ({reason}); "
                "without internet, set MODEL.BACKBONE.PATH to a local CLIP checkpoint file"
            ) from None
    state_dict = read_clip_state_dict(path)
    _check_openai_layout(state_dict, path)
    weights = {k: v for k, v in state_dict.items() if k not in _METADATA_KEYS}
    try:
        model = build_model(dict(state_dict))  # infers the architecture; builds in fp16
        # Reload in fp32: build_model rounds fp32 checkpoints through fp16.
        model = model.float()
        model.load_state_dict(weights)
    except (RuntimeError, KeyError, ZeroDivisionError) as exc:
        raise UserError(f"{path}: CLIP state dict does not fit OpenAI's architecture ({str(exc).splitlines()[0]})") from None
    if precision == "fp16":
        convert_weights(model)
    return _frozen(model)


def _frozen(model):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# ----- open_clip ------------------------------------------------------------
OPEN_CLIP_INSTALL = 'pip install -e ".[open_clip]"'


def _import_open_clip(name):
    try:
        import open_clip
    except ImportError:
        raise UserError(f"MODEL.BACKBONE.NAME {name} needs open_clip_torch, which is not installed; "
                        f"run {OPEN_CLIP_INSTALL}") from None
    return open_clip


def _open_clip_config(open_clip, arch):
    """(architecture name, model config); ``arch`` may be a model config JSON file to register."""
    if arch.endswith(".json"):
        config_file = os.path.expanduser(arch)
        if not os.path.isfile(config_file):
            raise UserError(f"open_clip model config not found: {config_file} (MODEL.BACKBONE.NAME open_clip:{arch})")
        arch = os.path.splitext(os.path.basename(config_file))[0]
        model_cfg = _read_model_config_file(config_file)
        preprocess = model_cfg.pop(PREPROCESS_KEY, None) if isinstance(model_cfg, dict) else None
        if not isinstance(preprocess, dict):
            open_clip.add_model_config(config_file)
        else:  # open_clip's model config has no field for it: register the config without it
            with tempfile.TemporaryDirectory() as folder:
                stripped = os.path.join(folder, os.path.basename(config_file))
                with open(stripped, "w") as f:
                    json.dump(model_cfg, f)
                open_clip.add_model_config(stripped)
            config = open_clip.get_model_config(arch)
            if config is not None:
                config[PREPROCESS_KEY] = preprocess
            return arch, config
    config = open_clip.get_model_config(arch) if arch and ":" not in arch else None
    if config is None:
        known = [m for m in open_clip.list_models() if m.startswith(("ViT-B", "RN50"))][:6]
        raise UserError(f"unknown open_clip architecture {arch!r} in MODEL.BACKBONE.NAME; use open_clip:<arch> with one "
                        f"of open_clip.list_models() (e.g. {', '.join(known)}) or open_clip:<model config .json>")
    return arch, config


def _check_open_clip_config(arch, config):
    """What the built model cannot tell: its tokenizer, and a HuggingFace text tower (whose
    construction would reach the hub). The tower's structure is checked on the model
    (``OpenCLIPBackbone``)."""
    text = config.get("text_cfg", {})
    if "hf_model_name" in text:
        problem = f"its HuggingFace text encoder {text['hf_model_name']!r}"
    elif text.get("hf_tokenizer_name") or "siglip" in arch.lower():
        problem = f"the tokenizer {text.get('hf_tokenizer_name') or 'SigLIP'!r}"
    elif text.get("tokenizer_kwargs"):
        problem = f"tokenizer options {text['tokenizer_kwargs']}"
    else:
        return
    raise UserError(f"open_clip:{arch}: {problem} is not supported ({SUPPORTED_TEXT_TOWER})")


def read_open_clip_state_dict(path):
    """State dict of an open_clip checkpoint: .safetensors, or a torch file (.bin/.pt/.pth, TorchScript)."""
    if not os.path.isfile(path):
        raise UserError(f"open_clip checkpoint not found: {path} (set MODEL.BACKBONE.PATH to an existing file)")
    if path.endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise UserError(f"{path}: reading .safetensors needs the safetensors package ({OPEN_CLIP_INSTALL})") from None
        try:
            state_dict = load_file(path, device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise UserError(f"cannot read {path} as safetensors ({str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__})") from None
    else:
        state_dict = read_clip_state_dict(path)
    if state_dict and all(k.startswith("module.") for k in state_dict):  # saved from DistributedDataParallel
        state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
    return {k: v for k, v in state_dict.items() if k not in _METADATA_KEYS}


def _describe_mismatch(model, state_dict):
    """The first key that stops a strict load, as a short phrase; None when everything fits."""
    expected = model.state_dict()
    for key, value in state_dict.items():
        if key in expected and tuple(expected[key].shape) != tuple(value.shape):
            return f"{key} has shape {tuple(value.shape)}, the architecture needs {tuple(expected[key].shape)}"
    missing = [k for k in expected if k not in state_dict]
    if missing:
        return f"missing {', '.join(missing[:3])}"
    unexpected = [k for k in state_dict if k not in expected]
    if unexpected:
        return f"unexpected {', '.join(unexpected[:3])}"
    return None


def load_open_clip(arch, path="", pretrained="", download_root=None, precision="fp32", random_weights=False):
    """open_clip's ``arch`` with weights from ``path`` (a local file) or the ``pretrained`` tag (download).

    Without either, the weights stay random only with ``random_weights`` (speed benchmarks);
    otherwise that is an error: a prompt learner on a random CLIP trains silently to nonsense. The model's own
    normalisation constants come from its config, or from the tag's.
    """
    name = f"{OPEN_CLIP_PREFIX}{arch}"
    open_clip = _import_open_clip(name)
    arch, config = _open_clip_config(open_clip, arch)
    _check_open_clip_config(arch, config)
    tag_cfg = {}
    if path:
        path = os.path.expanduser(path)
        source = path
    elif pretrained:
        from open_clip import pretrained as open_clip_pretrained

        tag_cfg = open_clip_pretrained.get_pretrained_cfg(arch, pretrained)
        if not tag_cfg:
            tags = open_clip_pretrained.list_pretrained_tags_by_model(arch)
            raise UserError(f"MODEL.BACKBONE.PRETRAINED {pretrained!r} is not an open_clip tag of {arch} "
                            f"(tags: {', '.join(tags) or 'none'}); or set MODEL.BACKBONE.PATH to a local checkpoint")
        if tag_cfg.get("quick_gelu", False) != config.get("quick_gelu", False):
            hint = f"{arch}-quickgelu" if tag_cfg.get("quick_gelu") else arch.replace("-quickgelu", "")
            raise UserError(f"MODEL.BACKBONE.PRETRAINED {pretrained!r} was trained with"
                            f"{'' if tag_cfg.get('quick_gelu') else 'out'} QuickGELU; set MODEL.BACKBONE.NAME open_clip:{hint}")
        try:
            source = open_clip_pretrained.download_pretrained(tag_cfg, cache_dir=download_root)
        except Exception as exc:  # no network: URLError/OSError, huggingface_hub's own errors
            reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            raise UserError(f"cannot download the open_clip weights {arch} {pretrained} ({reason[:160]}); "
                            "without internet, set MODEL.BACKBONE.PATH to a local open_clip checkpoint file") from None
        if not source:
            raise UserError(f"open_clip has no download for {arch} {pretrained}; set MODEL.BACKBONE.PATH to a local checkpoint")
    else:
        source = None
    logging.disable(logging.WARNING)  # its "initialized randomly" notice: the weights are loaded below
    try:
        model = open_clip.create_model(arch, pretrained=None, precision="fp16" if precision == "fp16" else "fp32",
                                       pretrained_image=False, pretrained_text=False)
    finally:
        logging.disable(logging.NOTSET)
    OpenCLIPBackbone(model, name)  # the model's own structure, checked again
    if source is None and not random_weights:
        raise UserError(f"MODEL.BACKBONE.NAME {name} has no weights: set MODEL.BACKBONE.PATH to a local open_clip "
                        "checkpoint file, or MODEL.BACKBONE.PRETRAINED to one of its tags (open_clip.list_pretrained())")
    if source is not None:
        state_dict = read_open_clip_state_dict(source)
        if _is_openai_archive(source) and not config.get("quick_gelu", False):
            raise UserError(f"{source} holds OpenAI's weights, trained with QuickGELU; "
                            f"set MODEL.BACKBONE.NAME open_clip:{arch}-quickgelu")
        if "positional_embedding" in state_dict and not hasattr(model, "positional_embedding"):
            state_dict = open_clip.model.convert_to_custom_text_state_dict(state_dict)  # CLIP layout into CustomTextCLIP
        if "logit_scale" in state_dict and state_dict["logit_scale"].ndim != model.logit_scale.ndim:
            state_dict["logit_scale"] = state_dict["logit_scale"].reshape(model.logit_scale.shape)
        problem = _describe_mismatch(model, state_dict)
        if problem:
            key = "MODEL.BACKBONE.PATH" if path else "MODEL.BACKBONE.PRETRAINED"
            raise UserError(f"{source} ({key}) is not a checkpoint of open_clip:{arch}: {problem}")
        model.load_state_dict(state_dict)  # copies into the model's dtypes (fp16 layers stay fp16)
    preprocess = tag_cfg or config.get(PREPROCESS_KEY)
    if preprocess:
        from open_clip.model import set_model_preprocess_cfg
        from open_clip.transform import merge_preprocess_dict

        set_model_preprocess_cfg(model, merge_preprocess_dict(model.visual.preprocess_cfg, preprocess))
    return model


def _is_openai_archive(path):
    """Whether ``path`` is a TorchScript archive (how OpenAI ships CLIP): a zip with compiled code."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


# ----- OpenAI-layout checkpoint -> open_clip model config ------------------------
# open_clip's model config has no field for the normalisation constants (its tags carry them); a config
# written by export_open_clip keeps non-default ones under this key (open_clip's own name for the dict).
PREPROCESS_KEY = "preprocess_cfg"


def _read_model_config_file(config_file):
    """The parsed JSON of an open_clip model config file (read once; one line if it cannot be)."""
    try:
        with open(config_file) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the open_clip model config {config_file} ({exc.__class__.__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def open_clip_config_from_openai(state_dict, image_mean=OPENAI_PIXEL_MEAN, image_std=OPENAI_PIXEL_STD):
    """open_clip's model config for the architecture of an OpenAI-layout state dict.

    The dimensions are inferred as ``clip.model.build_model`` does (heads = width / 64), and
    ``quick_gelu`` is true: OpenAI's CLIP was trained with QuickGELU. Mean and std other than
    OpenAI's are kept under ``preprocess_cfg`` (see :data:`PREPROCESS_KEY`).
    """
    if "visual.proj" in state_dict:
        conv1 = state_dict["visual.conv1.weight"]
        grid = round((state_dict["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        vision_cfg = {"image_size": conv1.shape[-1] * grid,
                      "layers": len([k for k in state_dict if k.startswith("visual.") and k.endswith(".attn.in_proj_weight")]),
                      "width": conv1.shape[0], "patch_size": conv1.shape[-1]}
    else:  # ModifiedResNet: four stages, the attention pool's grid is image size / 32
        grid = round((state_dict["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
        vision_cfg = {"image_size": grid * 32,
                      "layers": [len({k.split(".")[2] for k in state_dict if k.startswith(f"visual.layer{b}.")}) for b in (1, 2, 3, 4)],
                      "width": state_dict["visual.layer1.0.conv1.weight"].shape[0], "patch_size": None}
    width = state_dict["ln_final.weight"].shape[0]
    text_cfg = {"context_length": state_dict["positional_embedding"].shape[0],
                "vocab_size": state_dict["token_embedding.weight"].shape[0],
                "width": width, "heads": width // 64,
                "layers": len({k.split(".")[2] for k in state_dict if k.startswith("transformer.resblocks.")})}
    config = {"embed_dim": state_dict["text_projection"].shape[1], "quick_gelu": True,
              "vision_cfg": vision_cfg, "text_cfg": text_cfg}
    mean, std = [float(v) for v in image_mean], [float(v) for v in image_std]
    if len(mean) != 3 or len(std) != 3:
        raise UserError(f"image mean {mean} and std {std} need three values each (one per colour channel)")
    if (tuple(mean), tuple(std)) != (OPENAI_PIXEL_MEAN, OPENAI_PIXEL_STD):
        config[PREPROCESS_KEY] = {"mean": mean, "std": std}
    return config


def export_open_clip(checkpoint, config_out, weights_out="", image_mean=OPENAI_PIXEL_MEAN, image_std=OPENAI_PIXEL_STD,
                     overwrite=False):
    """Write the open_clip model config (``config_out``, a ``.json``) of an OpenAI-layout CLIP checkpoint
    and, with ``weights_out`` (``.safetensors``, ``.pt``, ``.bin``), its weights as open_clip's state dict.

    Both are checked before anything is written: the config and the checkpoint must load strictly
    through :func:`load_open_clip`. The architecture's name is the config's file name without ``.json``.
    Returns the model config.
    """
    if not config_out.endswith(".json"):
        raise UserError(f"{config_out}: the open_clip model config must be a .json file (its name is the architecture's)")
    if weights_out and not weights_out.endswith((".safetensors", ".pt", ".pth", ".bin")):
        raise UserError(f"{weights_out}: write the weights as .safetensors, .pt, .pth or .bin")
    for out in filter(None, (config_out, weights_out)):
        if os.path.exists(out) and not overwrite:
            raise UserError(f"{out} already exists; pass --overwrite to replace it or choose another name")
    state_dict = read_clip_state_dict(checkpoint)
    _check_openai_layout(state_dict, checkpoint)
    try:
        config = open_clip_config_from_openai(state_dict, image_mean, image_std)
    except (KeyError, IndexError) as exc:
        raise UserError(f"{checkpoint}: cannot infer the CLIP architecture (missing or odd {exc})") from None
    with tempfile.TemporaryDirectory() as folder:  # load the pair before writing it where the user asked
        candidate = os.path.join(folder, os.path.basename(config_out))
        write_json_atomic(candidate, config, indent=2)
        model = load_open_clip(candidate, checkpoint)
    if weights_out:
        weights = {k: v.contiguous() for k, v in model.state_dict().items()}
        if weights_out.endswith(".safetensors"):
            try:
                from safetensors.torch import save
            except ImportError:
                raise UserError(f"{weights_out}: writing .safetensors needs the safetensors package ({OPEN_CLIP_INSTALL})") from None
            write_bytes_atomic(weights_out, save(weights))
        else:
            torch_save_atomic(weights, weights_out)
    write_json_atomic(config_out, config, indent=2)
    return config
