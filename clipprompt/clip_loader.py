"""The one place that turns a backbone name or a local file into a CLIP model."""

import os
import warnings

import torch
from clip import clip as clip_api
from clip.model import build_model, convert_weights

from .errors import UserError

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


def _check_openai_layout(state_dict, path):
    keys = set(state_dict)
    if all(k in keys for k in _REQUIRED_KEYS) or all(k in keys for k in _REQUIRED_KEYS_RESNET):
        return
    missing = [k for k in _REQUIRED_KEYS if k not in keys]
    raise UserError(f"{path} is not a CLIP checkpoint in OpenAI layout (missing {', '.join(missing[:3])})")


def load_clip(backbone_name, path="", download_root=None, precision="fp32"):
    """Build a frozen, eval-mode CLIP on the CPU.

    ``path`` (``MODEL.BACKBONE.PATH``) wins over ``backbone_name`` and needs no
    internet; otherwise the name is one of ``clip.available_models()`` and the
    weights come through clip's download cache. ``precision`` "fp16" keeps
    OpenAI's half-precision layers (as CoOp does on a GPU); anything else is fp32.
    """
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
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
