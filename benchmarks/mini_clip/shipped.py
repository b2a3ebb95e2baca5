"""The mini CLIPs shipped with the repository: one pinned checkpoint per CPU benchmark.

Pretraining on another CPU (other thread count, other BLAS) gives other weights, and the benchmark
tables moved with them (CoOp's new accuracy by 7.8 points). So each benchmark runs by default on a
checkpoint stored in ``benchmarks/checkpoints/``: the weights ``benchmarks.pretrain_mini_clip`` made
here, cast to fp16 (both CLIP loaders read fp16 state dicts; the prompt learners run in fp32 on top),
with the pretraining report beside it (``<name>.json``: recipe, seed, threads, accuracies).
``sha256`` pins each file: a changed, truncated or Git-LFS-pointer file is refused with one line,
never used. ``scripts/mini_benchmark.sh`` uses these unless ``REBUILD=1`` (pretrain with the recipe)
or ``CLIP_CKPT`` (a file of your own); docs/mini_clip.md#the-shipped-checkpoints.

    python -m benchmarks.mini_clip.shipped fashion10    # prints the verified path (exit 2 if it is not)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass

from clipprompt.errors import UserError, exit_status

CHECKPOINT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints")


@dataclass(frozen=True)
class ShippedCheckpoint:
    benchmark: str
    file: str  # name in CHECKPOINT_DIR
    sha256: str
    made_by: str  # the command that made the fp32 weights before the fp16 cast

    @property
    def path(self) -> str:
        return os.path.join(CHECKPOINT_DIR, self.file)

    @property
    def short(self) -> str:
        """The sha256 prefix that tables quote."""
        return self.sha256[:12]


SHIPPED = {
    "fashion10": ShippedCheckpoint(
        "fashion10", "fashion10-v1.fp16.pt",
        "4eca786f1d7a683da21c54d9d4785c23c16f12c18ba8651c776d554b3a58fc1c",
        "OMP_NUM_THREADS=1 python -m benchmarks.pretrain_mini_clip --benchmark fashion10 --threads 1 --seed 0"),
    "fashion_colours": ShippedCheckpoint(
        "fashion_colours", "fashion_colours-v1.fp16.pt",
        "fcd8661b2aa370b3a6196779c166e01a8df1b065512e25a9f309c43e630592c6",
        "OMP_NUM_THREADS=1 python -m benchmarks.pretrain_mini_clip --benchmark fashion_colours --threads 1 --seed 0"),
}


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shipped(benchmark: str) -> ShippedCheckpoint:
    """The pinned checkpoint of ``benchmark``, after checking that its file is the pinned one."""
    if benchmark not in SHIPPED:
        raise UserError(f"no shipped mini CLIP for benchmark {benchmark!r} (shipped: {', '.join(sorted(SHIPPED))}); "
                        "set REBUILD=1 to pretrain it, or CLIP_CKPT to a checkpoint of your own")
    entry = SHIPPED[benchmark]
    if not os.path.isfile(entry.path):
        raise UserError(f"{entry.path}: the shipped mini CLIP of {benchmark} is missing; restore it with "
                        f"`git checkout -- {os.path.relpath(entry.path)}`, or set REBUILD=1 to pretrain one")
    found = sha256_of(entry.path)
    if found != entry.sha256:
        raise UserError(f"{entry.path}: sha256 {found[:12]}... is not the pinned {entry.short}... (a changed or "
                        "Git-LFS-pointer file); restore it with git, or set REBUILD=1 to pretrain one")
    return entry


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", help=f"one of {', '.join(sorted(SHIPPED))}")
    parser.add_argument("--sha", action="store_true", help="print the sha256 prefix instead of the path")
    args = parser.parse_args(argv)
    entry = shipped(args.benchmark)
    print(entry.short if args.sha else entry.path)
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(lambda: main()))
