"""Export an OpenAI-layout CLIP checkpoint (TorchScript archive or state dict) as an open_clip model.

Writes the open_clip model config (``--config``, a ``.json`` whose file name becomes the architecture's)
with the dimensions inferred from the state dict, ``quick_gelu`` true, and the image mean/std
(OpenAI's unless given); with ``--weights`` also the weights as open_clip's state dict
(``.safetensors``, ``.pt``, ``.bin``). Nothing is replaced without ``--overwrite``. Then::

    python train.py ... MODEL.BACKBONE.NAME open_clip:<config>.json MODEL.BACKBONE.PATH <checkpoint or --weights>

Usage::

    python -m tools.export_open_clip output/mini/mini_clip/mini_clip.pt --config output/mini/mini-clip.json
    python -m tools.export_open_clip ViT-B-16.pt --config vit_b16_openai.json --weights vit_b16_openai.safetensors
"""

import argparse
import sys

from clipprompt.clip.backbone import OPENAI_PIXEL_MEAN, OPENAI_PIXEL_STD
from clipprompt.clip.loader import export_open_clip
from clipprompt.errors import exit_status


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="OpenAI-layout CLIP checkpoint (what MODEL.BACKBONE.PATH takes)")
    parser.add_argument("--config", required=True, help="open_clip model config to write (.json)")
    parser.add_argument("--weights", default="", help="also write the weights in open_clip's layout (.safetensors/.pt/.bin)")
    parser.add_argument("--mean", type=float, nargs=3, default=list(OPENAI_PIXEL_MEAN), help="image mean (default OpenAI's)")
    parser.add_argument("--std", type=float, nargs=3, default=list(OPENAI_PIXEL_STD), help="image std (default OpenAI's)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    config = export_open_clip(args.checkpoint, args.config, args.weights, args.mean, args.std, overwrite=args.overwrite)
    vision, text = config["vision_cfg"], config["text_cfg"]
    print(f"wrote {args.config}: embed_dim {config['embed_dim']}, vision {vision['layers']} layers x {vision['width']} "
          f"(patch {vision['patch_size']}, {vision['image_size']} px), text {text['layers']} layers x {text['width']}")
    if args.weights:
        print(f"wrote {args.weights}")
    print(f"use: MODEL.BACKBONE.NAME open_clip:{args.config} MODEL.BACKBONE.PATH {args.weights or args.checkpoint}")


if __name__ == "__main__":
    sys.exit(exit_status(main))
