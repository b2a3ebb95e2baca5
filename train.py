"""Train or evaluate a prompt learner on CLIP (CoOp's command line).

    python train.py --root DATA --seed 1 --trainer DualPromptMI \
        --dataset-config-file configs/datasets/oxford_pets.yaml \
        --config-file configs/trainers/DualPromptMI/vit_b16_c4_ep10_batch4_ctxv1.yaml \
        --output-dir output/run DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES base

On several GPUs: ``torchrun --standalone --nproc_per_node N train.py ...`` (the same flags;
DATALOADER.TRAIN_X.BATCH_SIZE is then the batch of each process).
"""

import argparse
import difflib
import os
import shlex
import sys
import warnings

# clip-anytorch and wilds import pkg_resources; its deprecation notice is noise to users.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

# The trainers (trainers/ makes one Dassl trainer per name).
from clipprompt.catalog import TRAINER_NAMES  # noqa: E402  (the one list; imports nothing)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default="", help="path to the datasets (DATASET.ROOT)")
    p.add_argument("--output-dir", default="", help="output directory (OUTPUT_DIR)")
    p.add_argument("--resume", default="", help="checkpoint directory to resume training from")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an output dir that holds a run (the old one is moved aside)")
    p.add_argument("--seed", type=int, default=None, help="random seed (0 is a seed too); negative: no fixed seed")
    p.add_argument("--source-domains", nargs="+", help="source domains for DA/DG")
    p.add_argument("--target-domains", nargs="+", help="target domains for DA/DG")
    p.add_argument("--transforms", nargs="+", help="data augmentation methods (INPUT.TRANSFORMS)")
    p.add_argument("--config-file", default="", help="trainer config file")
    p.add_argument("--dataset-config-file", default="", help="dataset config file")
    p.add_argument("--trainer", default="", help=f"trainer name ({', '.join(TRAINER_NAMES)})")
    p.add_argument("--backbone", default="", help="CLIP backbone name (MODEL.BACKBONE.NAME)")
    p.add_argument("--head", default="", help="unused; kept for CoOp compatibility")
    p.add_argument("--eval-only", action="store_true", help="evaluation only")
    p.add_argument("--model-dir", default="", help="load a trained model from this directory")
    p.add_argument("--load-epoch", type=int, default=None, help="epoch of the checkpoint to load (default: the last)")
    p.add_argument("--no-train", action="store_true", help="build everything, do not train")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE pairs that override the config")
    return p


def check_opts(opts):
    """argparse hands everything after the first KEY to the KEY VALUE pairs, flags too."""
    from clipprompt.errors import UserError

    flags = [opt for opt in opts if opt.startswith("--")]
    if flags:
        raise UserError(f"put --flags before the KEY VALUE pairs: {flags[0]} comes after {opts[0]}")


def setup_cfg(args):
    from dassl.config import get_cfg_default

    from clipprompt.config import extend_cfg
    from clipprompt.errors import UserError
    from clipprompt.runtime.yamlfile import yaml_errors_as_user_errors

    cfg = get_cfg_default()
    extend_cfg(cfg)
    for flag, path in (("--dataset-config-file", args.dataset_config_file), ("--config-file", args.config_file)):
        if path:
            if not os.path.isfile(path):
                raise UserError(f"{flag} {path}: no such file")
            with yaml_errors_as_user_errors(path):  # a syntax error: file and line, not a traceback
                try:
                    cfg.merge_from_file(path)
                except (KeyError, ValueError, AssertionError) as exc:
                    raise UserError(f"{path}: {exc}") from None
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.output_dir:
        cfg.OUTPUT_DIR = args.output_dir
    if args.resume:
        cfg.RESUME = args.resume
    if args.seed is not None:
        cfg.SEED = args.seed
    if args.source_domains:
        cfg.DATASET.SOURCE_DOMAINS = args.source_domains
    if args.target_domains:
        cfg.DATASET.TARGET_DOMAINS = args.target_domains
    if args.transforms:
        cfg.INPUT.TRANSFORMS = args.transforms
    if args.trainer:
        cfg.TRAINER.NAME = args.trainer
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    if args.config_file:
        cfg.CONFIG_NAME = os.path.splitext(os.path.basename(args.config_file))[0]
    opts = list(args.opts)
    check_opts(opts)
    if len(opts) % 2:
        raise UserError(f"trailing options must be KEY VALUE pairs; got an odd number: {' '.join(opts)}")
    try:
        cfg.merge_from_list(opts)
    except (KeyError, ValueError, AssertionError) as exc:
        raise UserError(f"command-line option: {exc}") from None
    cfg.freeze()
    return cfg


def closest_name(name, names):
    """The one of ``names`` that ``name`` most likely means (case-insensitive), or None."""
    by_lower = {n.lower(): n for n in names}
    match = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    return by_lower.get(name.lower()) or (by_lower[match[0]] if match else None)


def check_trainer(name):
    """``name`` must be one of this toolkit's trainers (Dassl's own cannot run here)."""
    from clipprompt.errors import UserError

    choices = ", ".join(TRAINER_NAMES)
    if not name:
        raise UserError(f"no trainer given: pass --trainer ({choices})")
    if name not in TRAINER_NAMES:
        close = closest_name(name, TRAINER_NAMES)
        hint = f" (did you mean {close}?)" if close else ""
        raise UserError(f"unknown trainer {name!r} in --trainer / TRAINER.NAME{hint}; this toolkit's trainers: {choices}")


def check_dataset(name, registry):
    from clipprompt.errors import UserError

    if not name:
        raise UserError("no dataset given: pass --dataset-config-file configs/datasets/<dataset>.yaml (it sets DATASET.NAME)")
    names = registry.registered_names()
    if name not in names:
        close = closest_name(name, names)
        hint = f" (did you mean {close}?)" if close else ""
        raise UserError(f"unknown dataset {name!r} in DATASET.NAME (--dataset-config-file){hint}; "
                        f"available: {', '.join(sorted(names))}")


def check_prompt_depths(cfg, trainer_cls):
    """Prompt depths against the backbone's towers, read from its file without building CLIP."""
    from clipprompt.clip.loader import tower_blocks
    from clipprompt.errors import UserError

    depths = trainer_cls.prompt_depths(cfg)
    blocks = tower_blocks(cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.PATH)
    if not depths or blocks is None:
        return
    for key, tower, depth in depths:
        count = blocks[0] if tower == "text" else blocks[1]
        if count and not 1 <= depth <= count:  # a ResNet image tower (0 blocks) is refused at build
            raise UserError(f"{key} must lie in 1..{count} (the {tower} tower's blocks), got {depth}")


def preflight(cfg, args):
    """What can be checked before Dassl builds the trainer, so that an error costs seconds and
    comes before the config dump: the names, the output folder, the checkpoints to load, the
    backbone file against the prompt depths, and the dataset's split files in full."""
    from dassl.data.datasets import DATASET_REGISTRY
    from dassl.engine import TRAINER_REGISTRY

    from clipprompt.errors import UserError
    from clipprompt.methods import get_method
    from clipprompt.runtime import checkpoint as ckpt
    from clipprompt.runtime import distributed
    from clipprompt.runtime.run_folder import guard
    from datasets.base import preflight as dataset_preflight

    check_trainer(cfg.TRAINER.NAME)
    check_dataset(cfg.DATASET.NAME, DATASET_REGISTRY)
    if args.eval_only and get_method(cfg.TRAINER.NAME).trains:
        if not args.model_dir:
            raise UserError("--model-dir is required with --eval-only for a trained prompt")
        # read now (a prompt's checkpoint is small): a corrupt file or another trainer's is named up front
        ckpt.load_checkpoint(ckpt.find_checkpoint(args.model_dir, ckpt.MODEL_NAME, args.load_epoch),
                             expected_trainer=cfg.TRAINER.NAME)
    if cfg.RESUME:
        if not ckpt.saved_epochs(cfg.RESUME, ckpt.MODEL_NAME):
            raise UserError(f"--resume {cfg.RESUME}: it holds no checkpoint to resume from (the run stopped before "
                            f"its first one); start afresh with --overwrite and --output-dir {cfg.RESUME}")
        ckpt.load_checkpoint(ckpt.find_checkpoint(cfg.RESUME, ckpt.MODEL_NAME), expected_trainer=cfg.TRAINER.NAME)
    if distributed.is_main_process() and not args.overwrite:  # process 0 alone writes the output folder
        guard(cfg.OUTPUT_DIR, args.resume)
    check_prompt_depths(cfg, TRAINER_REGISTRY.get(cfg.TRAINER.NAME))
    dataset_preflight(cfg, DATASET_REGISTRY.get(cfg.DATASET.NAME))


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_opts(args.opts)  # before the imports of Dassl: a misplaced flag costs no seconds

    import datasets  # noqa: F401  (registers the datasets)
    import trainers  # noqa: F401  (registers the trainers)
    from clipprompt.runtime import distributed

    cfg = setup_cfg(args)
    distributed.init_from_env(use_cuda=cfg.USE_CUDA)
    try:
        preflight(cfg, args)
        return run(args, cfg, argv if argv is not None else sys.argv[1:])
    finally:
        distributed.shutdown()


def run(args, cfg, argv):
    import torch
    from dassl.engine import build_trainer
    from dassl.utils import collect_env_info, set_random_seed

    from clipprompt.runtime import checkpoint as ckpt
    from clipprompt.runtime import distributed, run_folder

    main_process = distributed.is_main_process()
    if main_process and args.overwrite:  # preflight refused a held folder without --overwrite
        note = run_folder.guard(cfg.OUTPUT_DIR, args.resume, overwrite=True)
        if note:
            print(note)
    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    log = None
    if main_process:
        resuming = bool(args.resume) and os.path.abspath(args.resume) == os.path.abspath(cfg.OUTPUT_DIR)
        log = sys.stdout = run_folder.RunLog(cfg.OUTPUT_DIR, append=resuming)
        run_folder.write_status(cfg.OUTPUT_DIR, "running", command=shlex.join(["python", "train.py", *argv]))
    else:  # one console and one log.txt: the other processes print errors only
        sys.stdout = open(os.devnull, "w")
    try:
        if distributed.is_distributed():
            print(f"torchrun: {distributed.world_size()} processes, backend {torch.distributed.get_backend()}")
        if torch.cuda.is_available() and cfg.USE_CUDA:
            torch.backends.cudnn.benchmark = True
        print(f"** Arguments **\n{vars(args)}\n** Config **\n{cfg}")
        if cfg.VERBOSE:
            print(f"** System info **\n{collect_env_info()}\n")

        trainer = build_trainer(cfg)
        if args.eval_only:
            trainer.load_model(args.model_dir, epoch=args.load_epoch)
            trainer.test()
        elif not args.no_train:
            trainer.train()
    except KeyboardInterrupt:
        if not main_process:
            return 130
        epochs = ckpt.saved_epochs(cfg.OUTPUT_DIR, ckpt.MODEL_NAME)
        run_folder.write_status(cfg.OUTPUT_DIR, "interrupted", last_checkpoint_epoch=epochs[-1] if epochs else None)
        if epochs and not args.eval_only:
            advice = (f"checkpoint of epoch {epochs[-1]} saved in {cfg.OUTPUT_DIR}; resume with: "
                      + run_folder.resume_command(argv, args.opts, cfg.OUTPUT_DIR))
        else:
            advice = f"no checkpoint was saved in {cfg.OUTPUT_DIR}; rerun the same command with --overwrite"
        print(f"interrupted: {advice}", file=sys.stderr)
        return 130
    except BaseException as exc:
        if main_process:
            run_folder.write_status(cfg.OUTPUT_DIR, "failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        raise
    finally:
        if log is not None:
            sys.stdout = log.console
            log.close()
    if main_process:
        run_folder.write_status(cfg.OUTPUT_DIR, "finished")
    return 0


if __name__ == "__main__":
    from clipprompt.errors import exit_status

    try:
        sys.exit(exit_status(main))
    except KeyboardInterrupt:  # before the run began (imports, checks): run() handles the rest
        print("interrupted: before the run began; nothing was written", file=sys.stderr)
        sys.exit(130)
