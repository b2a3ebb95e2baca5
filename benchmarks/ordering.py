"""Does a base-to-new run reproduce the field's ordering? Paired per-seed checks on results.json files.

    python -m benchmarks.ordering output/fashion_colours/base2new
    python -m benchmarks.ordering output/mini/base2new --config CoOp=mini_c4_ep20_batch8_ctxv1

The published benchmark ranks the known methods so (CoOp, CoCoOp and KgCoOp
papers, averaged over 11 datasets): CoOp gains on base classes and loses on
new ones against zero-shot CLIP; CoCoOp and KgCoOp trade a little base
accuracy for much more new-class accuracy, so their HM is above CoOp's. A CPU
benchmark that ranks these known methods otherwise cannot rank a new one.
Checks, each a mean paired per-seed difference (``clipprompt.results.paired``: 95%
t-interval over the seeds both runs have):

1. CoOp base - zero-shot base >= 5 points (mean);
2. CoOp new - zero-shot new < 0 (mean);
3. CoCoOp HM - CoOp HM > 0 (mean; HM per seed);
4. KgCoOp HM - CoOp HM > 0 and 5. KgCoOp HM - CoCoOp HM > 0 (mean; HM per seed);
6. MaPLe HM - KgCoOp HM > 0 and 7. PromptSRC HM - MaPLe HM > 0 (mean; HM per seed): with 3-5 the
   full published order PromptSRC 79.97 > MaPLe 78.55 > KgCoOp 77.00 > CoCoOp 75.83 > CoOp 71.66
   (11-dataset averages, ViT-B/16; clipprompt/results/published.py).

ProGrad and MaPLe against CoOp, and PromptSRC against KgCoOp, are printed too, for information.
A check that holds by the mean while its interval still crosses the threshold reads "yes, by the
mean only". Every verdict also says on how many seeds the check holds by itself ("4/6 seeds"), so
a reader sees the per-seed order next to the paired one.

fashion10 (FashionMNIST results, or ``--benchmark fashion10``) is a smoke test that claims only the
directions of checks 1-2 (docs/cpu_benchmarks.md): its HM orders 3-7 are printed for information
and do not decide its verdict. Exit status 0 when every deciding check holds, 1 when one fails
(the table is printed either way).
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.names import BENCHMARKS, benchmark_of
from benchmarks.paired_table import paired_table
from clipprompt.errors import UserError, exit_status
from clipprompt.results import DEFAULT_METRIC, load_results, per_config_values
from clipprompt.results.paired import paired_difference

ZERO_SHOT, COOP = "ZeroshotCLIP", "CoOp"
# (name, candidate trainer, reference trainer, measure, threshold the mean must exceed; None = information)
CHECKS = (
    ("CoOp base >= zero-shot base + 5", COOP, ZERO_SHOT, "base", 5.0),
    ("CoOp new < zero-shot new", ZERO_SHOT, COOP, "new", 0.0),  # zero-shot - CoOp > 0
    ("CoCoOp HM > CoOp HM", "CoCoOp", COOP, "hm", 0.0),
    ("KgCoOp HM > CoOp HM", "KgCoOp", COOP, "hm", 0.0),
    ("KgCoOp HM > CoCoOp HM", "KgCoOp", "CoCoOp", "hm", 0.0),
    ("MaPLe HM > KgCoOp HM", "MaPLe", "KgCoOp", "hm", 0.0),
    ("PromptSRC HM > MaPLe HM", "PromptSRC", "MaPLe", "hm", 0.0),
    ("ProGrad HM vs CoOp HM", "ProGrad", COOP, "hm", None),
    ("MaPLe HM vs CoOp HM", "MaPLe", COOP, "hm", None),  # published: 78.55 vs 71.66
    ("PromptSRC HM vs KgCoOp HM", "PromptSRC", "KgCoOp", "hm", None),  # published: 79.97 vs 77.00
)


# fashion10's 5 classes a half rank nothing: only the directions of CoOp against zero-shot decide there
SMOKE_TEST_CHECKS = ("CoOp base >= zero-shot base + 5", "CoOp new < zero-shot new")
CLAIMS = {
    "fashion10": "a smoke test: CoOp's directions against zero-shot decide; the HM orders are information",
    "fashion_colours": "the ranking benchmark: every published order is checked",
}


def per_seed_values(root, metric=DEFAULT_METRIC, dataset=None, configs=None):
    """``{trainer: {"base"|"new"|"hm": {seed: value}}}`` for one config per trainer (``configs`` picks
    it for a trainer with several)."""
    configs = dict(configs or {})
    by_trainer = {}
    for (trainer, config), halves in per_config_values(root, metric, dataset).items():
        by_trainer.setdefault(trainer, {})[config] = halves
    values = {}
    for trainer, by_config in by_trainer.items():
        if trainer in configs:
            if configs[trainer] not in by_config:
                raise UserError(f"--config {trainer}={configs[trainer]}: no such results (configs: "
                                f"{', '.join(sorted(by_config))})")
            values[trainer] = by_config[configs[trainer]]
        elif len(by_config) == 1:
            values[trainer] = next(iter(by_config.values()))
        elif any(trainer in check[1:3] for check in CHECKS):
            raise UserError(f"{trainer} has several configs ({', '.join(sorted(by_config))}); "
                            f"pass --config {trainer}=CFG")
    return values


def run_checks(values, benchmark=None):
    """One row per check whose trainers are present: (name, PairedDifference, threshold, holds);
    holds is None for information rows (on fashion10, every check outside SMOKE_TEST_CHECKS)."""
    rows = []
    for name, candidate, reference, measure, threshold in CHECKS:
        if candidate not in values or reference not in values:
            continue
        if benchmark == "fashion10" and name not in SMOKE_TEST_CHECKS:
            threshold = None
        diff = paired_difference(values[reference][measure], values[candidate][measure])
        holds = None if threshold is None else (diff.mean is not None and diff.mean >= threshold
                                                if threshold else diff.mean is not None and diff.mean > 0)
        rows.append((name, diff, threshold, holds))
    return rows


def seeds_holding(diff, threshold):
    """On how many of the paired seeds the difference alone meets the check (an information row: > 0)."""
    return sum(d >= threshold if threshold else d > 0 for d in diff.differences)


def verdict_of(diff, threshold, holds):
    """What the table's "holds" column says of one check, with the seeds on which it holds."""
    resolved = diff.ci_low is not None and threshold is not None and (
        diff.ci_low >= threshold if threshold else diff.ci_low > 0)  # the same test as holds, on the interval
    verdict = ("(information)" if holds is None else "NO" if not holds
               else "yes" if resolved else "yes, by the mean only")
    return f"{verdict}; {seeds_holding(diff, threshold)}/{diff.n} seeds"


def format_rows(rows):
    return "\n".join(paired_table("check", "holds", [(name, diff, verdict_of(diff, threshold, holds))
                                                      for name, diff, threshold, holds in rows]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="base-to-new output folder (holding train_base/ and test_new/)")
    parser.add_argument("--dataset", default=None, help="Dassl dataset name when the folder holds several")
    parser.add_argument("--metric", default=DEFAULT_METRIC)
    parser.add_argument("--config", action="append", default=[], metavar="TRAINER=CFG",
                        help="the config of a trainer that has several")
    parser.add_argument("--benchmark", choices=BENCHMARKS, default=None,
                        help="whose claims to check (default: read from the results' dataset; fashion10 "
                             "decides by CoOp's directions only)")
    args = parser.parse_args(argv)
    configs = {}
    for item in args.config:
        trainer, sep, cfg = item.partition("=")
        if not sep or not trainer or not cfg:
            raise UserError(f"--config {item!r}: write TRAINER=CFG")
        configs[trainer] = cfg
    loaded = load_results(args.root)
    values = per_seed_values(loaded, args.metric, args.dataset, configs)
    benchmark = benchmark_of(loaded.runs, args.dataset, args.benchmark)
    rows = run_checks(values, benchmark)
    if not rows:
        raise UserError(f"{args.root}: no pair of ZeroshotCLIP, CoOp, CoCoOp, KgCoOp, ProGrad, MaPLe, PromptSRC results to compare")
    print(f"Ordering checks ({args.metric}; differences in points, paired by seed):")
    if benchmark:
        print(f"benchmark {benchmark}: {CLAIMS[benchmark]}")
    print(format_rows(rows))
    failed = [name for name, _, _, holds in rows if holds is False]
    print("ordering: " + ("holds" if not failed else "FAILS (" + "; ".join(failed) + ")"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(exit_status(lambda: main()))
