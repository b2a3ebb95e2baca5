"""Writing a benchmark's downstream images as PNGs with their CoOp-format split file, atomically and
only once per source (``export_image_folder``, which fashion_colours uses too); FashionMNIST's own
export (``export_downstream_images``)."""

import hashlib
import io
import json
import os
from dataclasses import dataclass

import numpy as np

from benchmarks.fashion_mnist.idx import load_split
from benchmarks.fashion_mnist.split import downstream_split_json, image_index
from clipprompt.runtime.files import write_bytes_atomic

SPLIT_FILENAME = "split_fashion_mnist.json"
IMAGE_DIRNAME = "images"
SOURCE_FILENAME = "SOURCE"  # in the image folder: digest of the IDX data the PNGs came from


def _atomic_write_bytes(path, write):
    """``write(f)`` into memory, then one atomic write (``clipprompt.runtime.files.write_bytes_atomic``)."""
    buffer = io.BytesIO()
    write(buffer)
    write_bytes_atomic(path, buffer.getvalue(), os.path.splitext(path)[1])


@dataclass
class DownstreamExport:
    """Where ``export_downstream_images`` put things and how much it wrote."""

    image_dir: str
    split_path: str
    num_images_written: int


def export_downstream_images(root, out_dir, seed=0):
    """Write the downstream images as PNGs plus a CoOp-format split JSON.

    Reads the official TEST split from ``root`` (see ``find_idx_files``) and
    writes ``<out_dir>/images/test_<index>.png`` (28x28 grayscale, the raw
    pixels) for every image of ``downstream_split(labels, seed)`` and
    ``<out_dir>/split_fashion_mnist.json``, through ``export_image_folder``.
    """
    images, labels = load_split(root, "test")
    source = hashlib.sha1(images.tobytes() + labels.tobytes()).hexdigest() + "\n"
    return export_image_folder(out_dir, SPLIT_FILENAME, downstream_split_json(labels, seed=seed), source,
                               lambda filename: images[image_index(filename)])


def export_image_folder(out_dir, split_filename, split_json, source, render):
    """Write every image a CoOp-format split lists as a PNG, plus the split JSON.

    ``render(filename)`` gives the uint8 pixels ([H, W] or [H, W, 3]) of a
    listed file; ``source`` is a digest of everything the pixels depend on,
    kept in ``<out_dir>/images/SOURCE``.

    Idempotent: if the digest, the JSON and every listed PNG are already there,
    nothing is written. Each file is written atomically (temporary file +
    rename) and the digest last, so an interrupted export is redone by the next
    call; PNGs left from another source are always rewritten.
    """
    from PIL import Image  # imported here so the IDX reader works without Pillow

    image_dir = os.path.join(out_dir, IMAGE_DIRNAME)
    split_path = os.path.join(out_dir, split_filename)
    source_path = os.path.join(image_dir, SOURCE_FILENAME)
    listed = [row[0] for rows in split_json.values() for row in rows]

    same_source = _read_text(source_path) == source
    if same_source and _read_json(split_path) == split_json and all(
        os.path.isfile(os.path.join(image_dir, name)) for name in listed
    ):
        return DownstreamExport(image_dir, split_path, 0)

    os.makedirs(image_dir, exist_ok=True)
    if os.path.exists(source_path):
        os.remove(source_path)  # until the export completes, nothing in the folder is trusted
    num_written = 0
    for filename in listed:
        path = os.path.join(image_dir, filename)
        if same_source and os.path.isfile(path):
            continue
        picture = Image.fromarray(np.ascontiguousarray(render(filename)))
        _atomic_write_bytes(path, lambda f: picture.save(f, format="PNG"))
        num_written += 1
    payload = json.dumps(split_json, indent=1).encode()
    _atomic_write_bytes(split_path, lambda f: f.write(payload))
    _atomic_write_bytes(source_path, lambda f: f.write(source.encode()))
    return DownstreamExport(image_dir, split_path, num_written)


def _read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
