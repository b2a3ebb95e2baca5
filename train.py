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
import sys
import warnings

# clip-anytorch and wilds import pkg_resources; its deprecation notice is noise to users.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

# The trainers of trainers/ (tests/test_scripts.py checks this against the registry, the
# config folders and setup.py's description).
TRAINER_NAMES = ("ZeroshotCLIP", "ZeroshotCLIP2", "CoOp", "CoCoOp", "KgCoOp", "ProGrad", "MaPLe", "PromptSRC",
                 "DualPromptMI")


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


def setup_cfg(args):
    from dassl.config import get_cfg_default

    from clipprompt.config import extend_cfg
    from clipprompt.errors import UserError
    from clipprompt.yamlfile import yaml_errors_as_user_errors

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
    if len(opts) % 2:
        raise UserError(f"trailing options must be KEY VALUE pairs; got an odd number: {' '.join(opts)}")
    try:
        cfg.merge_from_list(opts)
    except (KeyError, ValueError, AssertionError) as exc:
        raise UserError(f"command-line option: {exc}") from None
    cfg.freeze()
    return cfg


def _check_registered(kind, name, registry, key, missing_hint):
    from clipprompt.errors import UserError

    names = registry.registered_names()
    if not name:
        raise UserError(f"no {kind} given: {missing_hint}")
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"unknown {kind} {name!r} in {key}{hint}; available: {', '.join(sorted(names))}")


RUN_MARKERS = ("results.json", "prompt_learner", "log.txt")


def guard_output_dir(cfg, args):
    """Refuse to mix a new run into a folder that already holds one."""
    from clipprompt.errors import UserError

    out = cfg.OUTPUT_DIR
    if not out or not os.path.isdir(out) or not any(os.path.exists(os.path.join(out, m)) for m in RUN_MARKERS):
        return
    if args.resume and os.path.abspath(args.resume) == os.path.abspath(out):
        return
    if args.overwrite:
        from clipprompt.files import move_aside

        aside = move_aside(out)
        print(f"Moved the previous run in {out} to {aside}")
        return
    raise UserError(f"output directory {out} already holds a run; pass --resume {out} to continue it, "
                    "--overwrite to start afresh (the old run is moved aside), or another --output-dir")


def main(argv=None):
    args = build_parser().parse_args(argv)

    from dassl.data.datasets import DATASET_REGISTRY
    from dassl.engine import TRAINER_REGISTRY

    import datasets  # noqa: F401  (registers the datasets)
    import trainers  # noqa: F401  (registers the trainers)

    from clipprompt import distributed

    cfg = setup_cfg(args)
    _check_registered("trainer", cfg.TRAINER.NAME, TRAINER_REGISTRY, "--trainer / TRAINER.NAME",
                      f"pass --trainer ({', '.join(sorted(TRAINER_REGISTRY.registered_names()))})")
    _check_registered("dataset", cfg.DATASET.NAME, DATASET_REGISTRY, "DATASET.NAME (--dataset-config-file)",
                      "pass --dataset-config-file configs/datasets/<dataset>.yaml (it sets DATASET.NAME)")
    distributed.init_from_env(use_cuda=cfg.USE_CUDA)
    try:
        run(args, cfg)
    finally:
        distributed.shutdown()


def run(args, cfg):
    import torch
    from dassl.engine import build_trainer
    from dassl.utils import collect_env_info, set_random_seed, setup_logger

    from clipprompt import distributed

    if distributed.is_main_process():  # process 0 alone checks and writes the output folder
        guard_output_dir(cfg, args)
    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    if distributed.is_main_process():
        setup_logger(cfg.OUTPUT_DIR)
    else:  # one console and one log.txt: the other processes print errors only
        sys.stdout = open(os.devnull, "w")
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
        return
    if not args.no_train:
        trainer.train()


if __name__ == "__main__":
    from clipprompt.errors import exit_status

    sys.exit(exit_status(main))
