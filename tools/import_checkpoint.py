"""Turn a checkpoint written by the official code (CoOp, CoCoOp, KgCoOp, ProGrad, MaPLe, PromptSRC) into ours.

    python -m tools.import_checkpoint --trainer MaPLe --official OFFICIAL_OUT/ --out imported/maple \\
        --config-file configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml [--clip ViT-B-16.pt] [KEY VALUE ...]

``--official``: the checkpoint file (``model.pth.tar-5``, ``model-best.pth.tar``) or the official output
folder that holds ``<model name>/`` (``prompt_learner``, ``MultiModalPromptLearner``, ``VLPromptLearner``);
``--epoch`` picks one there (default: the last). ``--config-file`` and the ``KEY VALUE`` pairs are the ones
``train.py --eval-only`` will get: the prompt tokens and depths of the checkpoint are checked against them.
Writes ``OUT/prompt_learner/model.pth.tar-<epoch>`` (never over an existing one without ``--overwrite``),
prints what it converted and the ``train.py --eval-only`` command that evaluates it. MaPLe and PromptSRC save
the whole model: their frozen CLIP weights are compared with ``--clip`` (default: ``MODEL.BACKBONE.PATH``)
when one is given, else reported as present and not compared. The formats: clipprompt/runtime/official.py.
"""

import argparse
import os
import shlex
import sys

DEFAULT_DATASET_CONFIG = "configs/datasets/DATASET.yaml"


def build_parser():
    from clipprompt.runtime.official import CONVERTIBLE

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trainer", required=True, choices=CONVERTIBLE, help="the official trainer that wrote --official")
    p.add_argument("--official", required=True, help="official checkpoint file, or the official output folder")
    p.add_argument("--out", required=True, help="folder to write our checkpoint tree into (train.py's --model-dir)")
    p.add_argument("--epoch", default=None, help="in an official output folder: the epoch to take, or 'best' "
                                                  "(default: the last saved)")
    p.add_argument("--config-file", default="", help="our trainer config the evaluation will use")
    p.add_argument("--clip", default="", help="CLIP file to compare a whole-model checkpoint's frozen CLIP with "
                                              "(default: MODEL.BACKBONE.PATH of the options)")
    p.add_argument("--root", default="", help="datasets root, for the printed evaluation command only")
    p.add_argument("--dataset-config-file", default="", help="for the printed evaluation command only")
    p.add_argument("--seed", type=int, default=1, help="for the printed evaluation command only (train.py "
                                                       "builds the few-shot training split with it; the test "
                                                       "split does not depend on it)")
    p.add_argument("--overwrite", action="store_true", help="replace a checkpoint of the same epoch in --out")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE pairs, as train.py takes them")
    return p


def our_config(args):
    """The yacs config train.py builds from --config-file and the KEY VALUE pairs (train.py's own code)."""
    import train

    cfg_args = train.build_parser().parse_args(
        ["--trainer", args.trainer, *(["--config-file", args.config_file] if args.config_file else []), *args.opts])
    return train.setup_cfg(cfg_args)


def parse_epoch(value):
    from clipprompt.errors import UserError
    from clipprompt.runtime import checkpoint as ckpt

    if value is None or value == "best":
        return ckpt.BEST if value else None
    try:
        return int(value)
    except ValueError:
        raise UserError(f"--epoch {value}: give a number or 'best'") from None


def main(argv=None):
    from clipprompt.errors import UserError

    parser = build_parser()

    def refuse(message):  # argparse's usage lines would hide the one line that says what to fix
        raise UserError(message)

    parser.error = refuse
    args = parser.parse_args(argv)
    import train

    train.check_opts(args.opts)  # flags after the KEY VALUE pairs: one line, before any work

    from clipprompt.clip.loader import read_clip_state_dict
    from clipprompt.methods import get_method
    from clipprompt.runtime import checkpoint as ckpt
    from clipprompt.runtime import official

    cfg = our_config(args)
    method = get_method(args.trainer)
    options = method.options_from(cfg)
    expected = official.expected_from_options(args.trainer, method.config_key, options)

    path = official.find_official(args.official, args.trainer, parse_epoch(args.epoch))
    payload = official.read_official(path)
    result = official.convert(args.trainer, payload["state_dict"], expected, source=f"--official {path}")
    epoch = payload.get("epoch")
    if not isinstance(epoch, int) or epoch < 0:
        raise UserError(f"--official {path}: its epoch entry is {epoch!r}, not a number of completed epochs")

    target = ckpt.checkpoint_path(args.out, ckpt.MODEL_NAME, epoch)
    if os.path.exists(target) and not args.overwrite:
        raise UserError(f"{target} exists; pass --overwrite to replace it, or another --out")

    clip_path = args.clip or cfg.MODEL.BACKBONE.PATH
    if args.clip and not os.path.isfile(args.clip):
        raise UserError(f"--clip {args.clip}: no such file")
    frozen_line = None
    if result.frozen_clip:
        count = sum(len(v) for v in result.frozen_clip.values())
        if clip_path:
            compared, worst = official.compare_frozen_clip(result.frozen_clip, read_clip_state_dict(clip_path),
                                                           clip_path)
            frozen_line = (f"frozen CLIP: {compared} tensors in the checkpoint, the same as {clip_path} (largest "
                           f"difference {worst:.2g} of a tensor's scale; allowed {official.FROZEN_TOLERANCE:g}); "
                           "not converted")
        else:
            frozen_line = (f"frozen CLIP: {count} tensors in the checkpoint, skipped and NOT compared with the CLIP "
                           "you evaluate with (pass --clip FILE, or MODEL.BACKBONE.PATH, to check them)")

    ckpt.save_checkpoint(target, trainer=args.trainer, model_state=result.state_dict, epoch=epoch,
                         extra={"classnames": None,  # the official file does not record them
                                "imported_from": {"path": os.path.abspath(path), "format": result.detected}})

    fmt = official.FORMATS[args.trainer]
    scope = "the whole model" if fmt.whole_model else "the prompt learner"
    print(f"official checkpoint: {path} (epoch {epoch}; {fmt.model_name}, {scope})")
    print(f"format: {result.detected}")
    print(f"converted {len(result.converted)} tensors:")
    for theirs, ours, shape in result.converted:
        print(f"  {theirs} {shape} -> {ours}")
    if result.dropped_class_dependent:
        print(f"dropped (class-dependent, rebuilt from the class names at evaluation, as the official load_model "
              f"does): {', '.join(result.dropped_class_dependent)}")
    if result.unused:
        print(f"skipped (saved but unused by the official model's inference): {', '.join(result.unused)}")
    if frozen_line:
        print(frozen_line)
    print(f"wrote {target}")
    command = ["python", "train.py", "--root", args.root or "DATA", "--seed", str(args.seed), "--trainer", args.trainer,
               "--dataset-config-file", args.dataset_config_file or DEFAULT_DATASET_CONFIG,
               *(["--config-file", args.config_file] if args.config_file else []),
               "--output-dir", os.path.join(args.out, "eval"), "--eval-only", "--model-dir", args.out,
               "--load-epoch", str(epoch), *args.opts]
    print("evaluate it with:")
    print("  " + shlex.join(command))
    return 0


if __name__ == "__main__":
    from clipprompt.errors import exit_status

    sys.exit(exit_status(main))
