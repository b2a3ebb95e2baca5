"""Checkpoints that load with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain Python values only (no pickled
optimiser or scheduler objects), so it loads under torch's safe default and
can be inspected without the code that wrote it. Layout on disk follows
CoOp: ``<output_dir>/<model_name>/model.pth.tar-<epoch>``.
"""

import os
import pickle
import re
import zipfile

import torch

from clipprompt.errors import UserError
from clipprompt.runtime.files import torch_save_atomic

FORMAT_VERSION = 1
MODEL_NAME = "prompt_learner"  # the checkpoint sub-folder of an output folder, as in CoOp
_EPOCH_FILE = re.compile(r"^model\.pth\.tar-(\d+)$")


BEST = "best"


def checkpoint_path(directory, model_name, epoch):
    """``epoch`` = number of completed epochs, or ``BEST`` for the best-on-val model."""
    if epoch == BEST:
        return os.path.join(directory, model_name, "model-best.pth.tar")
    return os.path.join(directory, model_name, f"model.pth.tar-{epoch}")


def save_checkpoint(path, *, trainer, model_state, epoch, optimizer_state=None, scheduler_state=None,
                    class_count=None, extra=None):
    """Write atomically: a crash mid-write never leaves a truncated checkpoint."""
    payload = {
        "format_version": FORMAT_VERSION,
        "trainer": trainer,
        "epoch": int(epoch),
        "state_dict": model_state,
        "optimizer": optimizer_state,
        "scheduler": scheduler_state,
        "num_classes": class_count,
        "extra": extra or {},
    }
    torch_save_atomic(payload, path)
    return path


def saved_epochs(directory, model_name):
    folder = os.path.join(directory, model_name)
    if not os.path.isdir(folder):
        return []
    epochs = [int(m.group(1)) for m in map(_EPOCH_FILE.match, os.listdir(folder)) if m]
    return sorted(epochs)


def find_checkpoint(directory, model_name, epoch=None):
    """Path of the checkpoint for ``epoch`` (the last one saved if None)."""
    if not os.path.isdir(directory):
        raise UserError(f"model directory not found: {directory} (check --model-dir)")
    epochs = saved_epochs(directory, model_name)
    if not epochs:
        raise UserError(f"no checkpoints in {os.path.join(directory, model_name)} (was the model trained with this --output-dir?)")
    if epoch == BEST:
        path = checkpoint_path(directory, model_name, BEST)
        if not os.path.isfile(path):
            raise UserError(f"no best-on-val checkpoint {path} (train with TEST.FINAL_MODEL best_val)")
        return path
    if epoch is None:
        epoch = epochs[-1]
    elif epoch not in epochs:
        raise UserError(f"no checkpoint for epoch {epoch} in {os.path.join(directory, model_name)}; saved epochs: {', '.join(map(str, epochs))} (check --load-epoch / LOADEP)")
    return checkpoint_path(directory, model_name, epoch)


def damage(path):
    """Why ``path`` cannot be a complete checkpoint (empty, truncated, corrupt), or None.

    torch.save writes a zip archive whose directory sits at the end of the file, so an
    interrupted copy or a full disk leaves a file that zipfile cannot open.
    """
    size = os.path.getsize(path)
    if size == 0:
        return "it is empty (0 bytes)"
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        return None  # not a zip: perhaps torch's legacy format or another tool's file
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError):
        return f"it is truncated ({size:,} bytes, the end of the archive is missing)"
    return f"it is corrupt ({bad} fails its checksum)" if bad else None


def unreadable(path, exc):
    """The one-line UserError for a checkpoint ``torch.load`` failed on with ``exc``: damaged (:func:`damage`),
    holding pickled objects, or no checkpoint at all."""
    why = damage(path)
    if why:
        return UserError(f"cannot read checkpoint {path}: {why}; an interrupted copy or a full disk "
                         "does this: copy it again or retrain")
    foreign = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    if isinstance(exc, pickle.UnpicklingError) and foreign:
        return UserError(f"cannot load checkpoint {path} safely: it holds pickled objects ({foreign.group(1)}) that "
                         "this toolkit never writes; it was written by other code")
    # Anything else torch.load raises on such a file (UnpicklingError, IndexError, EOFError, ...
    # depending on the bytes) means the same: no checkpoint can be read from it.
    return UserError(f"cannot read checkpoint {path}: it is corrupt or not a checkpoint (neither a valid zip "
                     f"archive nor a pickle torch can read; {exc.__class__.__name__}); copy it again or retrain")


def load_checkpoint(path, expected_trainer=None):
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise unreadable(path, exc) from None
    if not isinstance(payload, dict) or "state_dict" not in payload or "trainer" not in payload:
        raise UserError(f"{path} is not a checkpoint of this toolkit (no trainer/state_dict entries)")
    if expected_trainer is not None and payload["trainer"] != expected_trainer:
        raise UserError(f"checkpoint {path} was trained with {payload['trainer']}, not {expected_trainer} (check --trainer and --model-dir)")
    return payload


def load_matching_state(module, state_dict, skip_prefixes=(), source="checkpoint"):
    """Load ``state_dict`` into ``module`` where keys exist; shapes must fit.

    Class-set-dependent entries (``skip_prefixes``) are left out when the class
    set differs. A shape mismatch is a user error (e.g. class-specific context
    trained for another number of classes), not a silent partial load.
    """
    own = module.state_dict()
    to_load = {}
    for key, value in state_dict.items():
        if any(key.startswith(p) for p in skip_prefixes):
            continue
        if key not in own:
            raise UserError(f"{source}: unexpected entry {key!r}; was it trained with another configuration?")
        if own[key].shape != value.shape:
            hint = ""
            if key.endswith("prompt_learner.ctx") or key == "prompt_learner.ctx":
                hint = " (class-specific context, CSC, cannot transfer to another class set)"
            raise UserError(f"{source}: {key} has shape {tuple(value.shape)} but the model expects {tuple(own[key].shape)}{hint}")
        to_load[key] = value
    missing = [k for k in own if k not in to_load and not any(k.startswith(p) for p in skip_prefixes)]
    module.load_state_dict(to_load, strict=False)
    return missing
