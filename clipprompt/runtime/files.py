"""Files a run writes: atomic writes and moving an old run folder aside.

One home for both, so that every writer (results, checkpoints, split files,
few-shot caches, benchmark exports, tools) behaves the same: a reader never sees
a half-written file, and nothing a user made is deleted.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time


def default_file_mode() -> int:
    """Permissions a plain ``open(path, "w")`` would give (mkstemp's are owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes_atomic(path, data: bytes, suffix: str = "") -> None:
    """Write ``data`` through a temporary file in the same folder and ``os.replace``, with the
    permissions a plain ``open`` would give; the temporary file is removed on any failure."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp_path, default_file_mode())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def write_text_atomic(path, text: str, suffix: str = "") -> None:
    write_bytes_atomic(path, text.encode("utf-8"), suffix or os.path.splitext(os.fspath(path))[1])


def write_json_atomic(path, obj, indent: int | None = None) -> None:
    """JSON through :func:`write_bytes_atomic`."""
    write_bytes_atomic(path, json.dumps(obj, indent=indent).encode("utf-8"), ".json")


def torch_save_atomic(obj, path) -> None:
    """``torch.save`` through :func:`write_bytes_atomic`: a crash never leaves a truncated file."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue(), os.path.splitext(os.fspath(path))[1] or ".pt")


def move_aside(folder) -> str:
    """Rename ``folder`` to ``<folder>.old-<time>`` (nothing is deleted); returns the new path.

    A second move within the same second gets a ``-2``, ``-3``... suffix instead of replacing
    the first one's folder.
    """
    folder = os.fspath(folder).rstrip(os.sep)
    stem = f"{folder}.old-{time.strftime('%Y%m%d-%H%M%S')}"
    aside, count = stem, 1
    while os.path.exists(aside):
        count += 1
        aside = f"{stem}-{count}"
    os.replace(folder, aside)
    return aside
