"""Many runs, one command: trainers x datasets x seeds through the protocol scripts.

    python -m tools.grid base2new --trainers CoOp CoCoOp DualPromptMI \\
        --datasets oxford_pets caltech101 --seeds 1 2 3 --data /path/to/data

Protocols: ``base2new`` (base2new_train.sh then base2new_test.sh), ``fewshot``
(fewshot_train.sh; --shots), ``xd`` (xd_train.sh on --source, then xd_test.sh on each
of --datasets). A job is one (trainer, dataset, seed) of a protocol: its steps run in order,
with their console output in one log (<output>/grid_logs/<protocol>/<job>.log).

Where: one job per GPU of this machine, from a queue (CUDA_VISIBLE_DEVICES per worker;
--gpus-per-run K gives each job K GPUs and launches it with torchrun); without a GPU, --jobs
(or $JOBS) CPU processes with one thread each; or SLURM through submitit (--slurm; an
optional dependency: pip install submitit).

Skips finished jobs (every step's results.json exists). After an interruption, rerun the
same command: finished jobs are skipped, an unfinished run folder is continued from its last
checkpoint (the scripts' RESUME=1: train.py --resume) or, with none, restarted with the old
folder moved aside to <folder>.old-<time> (nothing is deleted). The run folders come from the
scripts themselves (RUN_DIR_ONLY=1), so the layout has one home: scripts/common.sh.
At the end it prints the table of parse_test_res.py for the protocol's tree.

Python API (for scripts that run their own grids), in ``tools.gridlib``: ``plan_grid`` -> list of
``Job``, ``run_jobs(jobs, local_workers(...))`` -> list of ``Outcome``, ``print_table``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from clipprompt.errors import UserError, exit_status
from tools.gridlib import PROTOCOLS, local_workers, plan_grid, print_table, run_jobs, run_slurm


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    p.add_argument("protocol", choices=PROTOCOLS)
    p.add_argument("--trainers", nargs="+", required=True)
    p.add_argument("--datasets", nargs="+", required=True, help="xd: the target datasets")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--cfg", nargs="+", default=[], metavar="TRAINER=CFG",
                   help="config stem(s) per trainer, e.g. DualPromptMI=a DualPromptMI=b (default: the scripts')")
    p.add_argument("--shots", type=int, default=16)
    p.add_argument("--source", default="imagenet", help="xd: the dataset trained on (default imagenet)")
    p.add_argument("--data", default=os.environ.get("DATA", "./data"))
    p.add_argument("--output", default=os.environ.get("OUTPUT", "./output"))
    p.add_argument("--config-root", default=os.environ.get("CONFIG_ROOT"), help="folder of the trainer configs (default configs/trainers)")
    p.add_argument("--jobs", type=int, default=None, help="CPU processes at once when there is no GPU (default $JOBS or 1)")
    p.add_argument("--gpus", default=None, help="GPU ids to use, e.g. 0,1,2,3 (default: all visible)")
    p.add_argument("--gpus-per-run", type=int, default=1, help="GPUs per run (>1: torchrun, one run on several GPUs)")
    p.add_argument("--first-alone", action="store_true", help="run the first job before the others (it prepares shared data)")
    p.add_argument("--slurm", action="store_true", help="submit to SLURM through submitit instead of running here")
    p.add_argument("--partition", default=None, help="SLURM partition")
    p.add_argument("--time-min", type=int, default=240, help="SLURM time limit per job, minutes")
    p.add_argument("--cpus-per-run", type=int, default=8, help="SLURM CPUs per job")
    p.add_argument("--slurm-parallel", type=int, default=64, help="SLURM jobs running at once (array parallelism)")
    p.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE", help="config overrides for every run")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    cfgs: dict = {}
    for item in args.cfg:
        trainer, sep, stem = item.partition("=")
        if not sep or not trainer or not stem:
            raise UserError(f"--cfg {item}: expected TRAINER=CFG, e.g. CoOp=vit_b16_ctxv1")
        cfgs.setdefault(trainer, []).append(stem)
    if len(args.opts) % 2:
        raise UserError(f"--opts takes KEY VALUE pairs; got an odd number: {' '.join(args.opts)}")
    jobs = plan_grid(args.protocol, args.trainers, args.datasets, args.seeds, data=args.data, output=args.output,
                     shots=args.shots, cfgs=cfgs, source=args.source, opts=args.opts, config_root=args.config_root)
    if args.slurm:
        params = {"timeout_min": args.time_min, "gpus_per_node": args.gpus_per_run, "tasks_per_node": 1,
                  "cpus_per_task": args.cpus_per_run, "slurm_array_parallelism": args.slurm_parallel}
        if args.partition:
            params["slurm_partition"] = args.partition
        if args.gpus_per_run > 1:
            launch = f"python -m torch.distributed.run --standalone --nproc_per_node {args.gpus_per_run}"
            for job in jobs:
                job.env["LAUNCH"] = launch
        outcomes = run_slurm(jobs, Path(args.output).resolve() / "grid_logs" / "slurm", params)
    else:
        gpus = args.gpus.split(",") if args.gpus else None
        outcomes = run_jobs(jobs, local_workers(args.jobs, gpus, args.gpus_per_run), first_alone=args.first_alone)
    print_table(args.protocol, Path(args.output).resolve())
    failed = [o for o in outcomes if o.status == "failed"]
    done = sum(o.status == "done" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    print(f"grid: {done} done, {skipped} skipped (finished before), {len(failed)} failed")
    for outcome in failed:
        print(f"failed: {outcome.job.name}: {outcome.message}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(exit_status(main))
