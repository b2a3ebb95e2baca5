"""Ablation runner: every (variant, seed) through the base-to-new scripts, then paired per-seed statistics.

    # choose defaults on the base classes only, then report the choice on the real split
    python -m tools.ablation --plan components --dataset fashion_mnist --pseudo --select-by hm \\
        --data DATA --out output/ablation --seeds 1 2 3 4 5 6 --jobs 2 \\
        --extra MODEL.BACKBONE.PATH output/mini/mini_clip/mini_clip.pt

    # a plain ablation on the real base/new split, from a plan file
    python -m tools.ablation --plan my_plan.json --dataset oxford_pets --data DATA --out output/abl_pets

Plans: ``--plan NAME`` is ``configs/ablation/NAME.py`` (or .json), ``--list-plans`` lists them; any
other value is a plan file (format: tools/ablationlib/plan.py).

Runs go through tools/gridlib.py's runner: each (variant, seed) is ``scripts/base2new_train.sh``
then ``scripts/base2new_test.sh``, seed by seed (so that complete pairs accumulate first), the
first alone, then ``--jobs`` CPU processes at once (one thread each) or one per GPU (--gpus).
Their output goes to a root per variant, ``<out>/<stage>/<variant>/``, in the scripts' layout;
logs to ``<out>/logs/<stage>/<variant>/``. Rerunning with the same --out reuses finished runs
(their results.json exists); ``<out>/ablation_manifest.json`` refuses a variant, --extra, --data
or --config-root that changed meaning, and a variant whose effective config changed (a default
or its trainer YAML). A failed run is reported with its log and the others continue; the exit
status is then 1. An unfinished run folder is moved aside (``<dir>.old-<time>``) and run again
from scratch; a lock on --out keeps two invocations apart.

Stages. ``real``: the dataset's own base/new split. ``pseudo_<dataset>`` (--pseudo, needs Dassl):
the dataset restricted to its base classes, split again into pseudo-base and pseudo-new, by label
order (``--pseudo-split label``, the default) or so that no pseudo-new class name shares a word with
a pseudo-base one (``--pseudo-split word_disjoint``, stage ``pseudowd_<dataset>``, as the real split
of fashion_colours; tools/ablationlib/wordsplit.py); with --select-by, the reference and the chosen
variant then run on the real split and are reported after the choice (tools/ablationlib/stages.py).

Tables (``clipprompt.results.paired``): per variant Base, New, HM; against the reference, paired
differences with a 95% t-interval and a verdict, for ``accuracy`` and, where runs report it,
``variants.soft_only.accuracy``; printed and written to
``<out>/ablation_<dataset>[_pseudo[_word_disjoint]|_after_choice].{md,csv,json}``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # from clip, via the datasets

from clipprompt.errors import UserError, exit_status  # noqa: E402
from tools.ablationlib.plan import (  # noqa: E402
    DEFAULT_CONFIG_ROOT,
    Plan,
    Settings,
    check_configs,
    check_options,
    list_plans,
    load_plan,
    with_reference,
)
from tools.ablationlib.report import report  # noqa: E402
from tools.ablationlib.runs import acquire_lock, run_stage, update_manifest  # noqa: E402
from tools.ablationlib.stages import PSEUDO_SPLITS, pseudo_stage, real_stage, stage_jobs  # noqa: E402
from tools.gridlib import local_workers  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--plan", help="a plan name (configs/ablation/NAME.py or .json; see --list-plans) or a plan file")
    p.add_argument("--list-plans", action="store_true", help="print the plans of configs/ablation/ and exit")
    p.add_argument("--reference", help="compare against this variant instead of the plan's reference")
    p.add_argument("--dataset", help="dataset config stem under configs/datasets (e.g. fashion_mnist)")
    p.add_argument("--data", default="./data", help="dataset root (DATA of the scripts)")
    p.add_argument("--out", help="output folder of the ablation")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5, 6], help="seeds (default 1..6)")
    p.add_argument("--shots", type=int, default=16, help="shots per class (default 16)")
    p.add_argument("--jobs", type=int, default=2, help="CPU processes at once, one thread each, when there is no GPU (default 2)")
    p.add_argument("--gpus", default=None, help="GPU ids, one run on each at a time, e.g. 0,1 (default: all visible; "
                                                "CUDA_VISIBLE_DEVICES= runs on the CPU)")
    p.add_argument("--extra", nargs="+", default=[], metavar="KEY VALUE",
                   help="options appended to every run (e.g. MODEL.BACKBONE.PATH ckpt; paths from the repository root)")
    p.add_argument("--python", default=sys.executable, help="interpreter for train.py (PYTHON of the scripts)")
    p.add_argument("--config-root", default=os.environ.get("CONFIG_ROOT"),
                   help="folder of the trainer configs, relative to the repository (CONFIG_ROOT of the scripts; "
                        f"default: the plan's config_root, else {DEFAULT_CONFIG_ROOT})")
    p.add_argument("--pseudo", action="store_true",
                   help="run the plan on the base classes only, split into pseudo-base / pseudo-new (needs Dassl)")
    p.add_argument("--pseudo-split", choices=tuple(PSEUDO_SPLITS), default="label",
                   help="with --pseudo: cut the base classes by label order (default) or word-disjoint "
                        "(pseudo-new names share no word with pseudo-base names)")
    p.add_argument("--select-by", choices=("hm", "base", "new"),
                   help="name the variant with the best mean (with --pseudo: then run it and the reference on the real split)")
    p.add_argument("--no-confirm", action="store_true", help="with --pseudo --select-by: stop after the choice")
    p.add_argument("--no-run", action="store_true", help="only aggregate the results that exist")
    p.add_argument("--dry-run", action="store_true", help="print the script calls, run and write nothing")
    return p


def settings_from_args(args) -> Settings:
    for flag in ("plan", "dataset", "out"):
        if not getattr(args, flag):
            raise UserError(f"--{flag} is required (see --help)")
    if args.shots < 1 or args.jobs < 1:
        raise UserError("--shots and --jobs must be at least 1")
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        raise UserError(f"--seeds must be distinct and >= 0, got {' '.join(map(str, args.seeds))}")
    extra = check_options(args.extra, "--extra")
    return Settings(Path(args.out), args.data, args.shots, tuple(args.seeds), extra, args.python)


def with_config_root(settings: Settings, given: str | None, plan: Plan) -> Settings:
    """--config-root (or CONFIG_ROOT) if given, else the plan's config_root, else configs/trainers."""
    root = given or plan.config_root or DEFAULT_CONFIG_ROOT
    root = os.path.relpath(Path(root).resolve(), REPO) if os.path.isabs(root) else os.path.normpath(root)
    if not (REPO / root).is_dir():
        raise UserError(f"--config-root {given or root}: no such folder (relative to {REPO})")
    return replace(settings, config_root=root)


def print_dry_run(jobs) -> None:
    for job in jobs:
        env = " ".join(f"{key}={shlex.quote(value)}" for key, value in job.env.items())
        for step in job.steps:
            print(f"{env} {shlex.join(['bash', f'scripts/{step.script}', *step.args, *job.opts])}")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_plans:
        print(list_plans())
        return 0
    started = time.monotonic()
    settings = settings_from_args(args)
    plan = load_plan(args.plan)
    if args.reference:
        plan = with_reference(plan, args.reference)
    settings = with_config_root(settings, args.config_root, plan)
    check_configs(plan, args.dataset, settings)
    acting = not (args.dry_run or args.no_run)
    lock = acquire_lock(settings.out) if acting else None
    try:
        return run_plan(args, plan, settings, acting, started)
    finally:
        if lock is not None:
            lock.close()  # releases it


def run_plan(args, plan: Plan, settings: Settings, acting: bool, started: float) -> int:
    """The stages of ``plan``: run (when ``acting``), aggregate, report; the exit status."""
    variants = list(plan.variants)
    if args.pseudo_split != "label" and not args.pseudo:
        raise UserError("--pseudo-split needs --pseudo")
    first = (pseudo_stage(args.dataset, settings, write=acting, split=args.pseudo_split) if args.pseudo
             else real_stage(args.dataset))
    stages = [first, real_stage(args.dataset)] if args.pseudo else [first]
    if args.dry_run:
        print_dry_run(stage_jobs(variants, first, settings))
        return 0
    workers = local_workers(args.jobs, args.gpus.split(",") if args.gpus else None) if acting else []
    if acting:
        print(f"manifest: {update_manifest(plan, stages, settings)}", flush=True)

    outcomes = run_stage(variants, first, settings, workers) if acting else []
    failed = [outcome for outcome in outcomes if outcome.status == "failed"]
    split_name = "word-disjoint pseudo split" if args.pseudo_split == "word_disjoint" else "pseudo split"
    title = f"Ablation on the {split_name if args.pseudo else 'base/new split'} of {args.dataset}"
    stem = f"ablation_{args.dataset}" + ("_pseudo" + PSEUDO_SPLITS[args.pseudo_split][1] if args.pseudo else "")
    tables, selection = report(plan, variants, first, settings, args.select_by, title, stem)
    if selection is not None and not args.pseudo:
        print("note: chosen on the real new classes; to choose defaults without them, use --pseudo")

    if args.pseudo and selection is not None and not args.no_confirm:
        if failed:
            print("not running the choice on the real split: some pseudo-split runs failed (see above)", file=sys.stderr)
        else:
            chosen = [plan.variant(plan.reference)]
            if selection.best != plan.reference:
                chosen.append(plan.variant(selection.best))
            real = stages[1]
            if acting:
                outcomes_real = run_stage(chosen, real, settings, workers)
                outcomes += outcomes_real
                failed += [outcome for outcome in outcomes_real if outcome.status == "failed"]
            report(plan, chosen, real, settings, None,
                   f"After the choice: {selection.best} on the real split of {args.dataset}",
                   f"ablation_{args.dataset}_after_choice")

    counts = {status: sum(outcome.status == status for outcome in outcomes) for status in ("done", "skipped", "failed")}
    print(f"wall time: {time.monotonic() - started:.1f} s (runs: {counts['done']} made, {counts['skipped']} reused, "
          f"{counts['failed']} failed)", flush=True)
    for outcome in failed:
        print(f"FAILED: {outcome.job.name}: {outcome.message}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(exit_status(main))
    except KeyboardInterrupt:  # outside the runs (run_jobs says so itself)
        print("interrupted: run the same command again to resume", file=sys.stderr)
        sys.exit(130)
