"""Per-seed values of each variant, means and paired differences against the reference, the choice.

Statistics are ``clipprompt.results.paired``'s: Base, New and HM (the HM of each seed's Base and New), mean
± sample std over the seeds that have both halves; against the reference, paired differences over
the common seeds, their mean, a 95% t-interval and a verdict (better / worse / unresolved).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipprompt.errors import UserError
from clipprompt.results import RESULTS_FILENAME, load_result_file
from clipprompt.results.paired import PairedDifference, format_difference, mean_and_std, paired_difference, seed_halves
from tools.ablationlib.plan import Plan, Settings, Variant
from tools.ablationlib.stages import Stage, build_job, stage_jobs

HALVES = ("base", "new", "hm")
METRICS = ("accuracy", "variants.soft_only.accuracy")  # DualPromptMI: the ensembled view, then its soft view


@dataclass
class VariantResult:
    """One variant's per-seed values of one metric; only seeds with both halves count."""

    variant: Variant
    values: dict  # half -> {seed: value}, halves "base", "new", "hm"
    incomplete: dict  # seed -> which half is missing, e.g. {3: "new"}

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted(self.values["hm"]))

    def stats(self, half: str) -> tuple[float | None, float | None]:
        return mean_and_std([self.values[half][seed] for seed in self.seeds])


@dataclass
class MetricTable:
    stage: Stage
    metric: str
    reference: str
    results: list  # VariantResult, plan order
    differences: dict  # variant -> half -> PairedDifference (not for the reference)
    notes: list


def read_value(path: Path, metric: str, problems: list) -> float | None:
    if not path.is_file():
        return None
    try:
        return load_result_file(path).value(metric)
    except UserError as exc:
        problems.append(f"skipped: {exc}")
        return None


def collect(variant: Variant, stage: Stage, settings: Settings, metric: str, problems: list) -> VariantResult | None:
    """The variant's values of ``metric``; None when its results exist but none reports it (CoOp's soft_only)."""
    base_values, new_values = {}, {}
    incomplete = {}
    found = 0
    for seed in settings.seeds:
        train, test = (step.run_dir / RESULTS_FILENAME for step in build_job(variant, seed, stage, settings).steps)
        found += train.is_file() + test.is_file()
        base = read_value(train, metric, problems)
        new = read_value(test, metric, problems)
        if base is not None and new is not None:
            base_values[seed], new_values[seed] = base, new
        elif base is not None or new is not None:
            incomplete[seed] = "new" if new is None else "base"
    if found and not base_values and not incomplete:
        return None
    return VariantResult(variant, seed_halves(base_values, new_values), incomplete)


def aggregate(plan: Plan, variants: list[Variant], stage: Stage, settings: Settings, metric: str) -> MetricTable | None:
    """Per-variant means and paired differences against the reference; None if no run has ``metric``."""
    notes: list[str] = []
    stage_jobs(variants, stage, settings)  # the run folders of all its jobs at once (build_job keeps them)
    results = [r for r in (collect(v, stage, settings, metric, notes) for v in variants) if r is not None]
    if not any(result.seeds or result.incomplete for result in results):
        return None
    by_name = {result.variant.name: result for result in results}
    reference = by_name.get(plan.reference)
    differences = {}
    if reference is None:
        notes.append(f"the reference {plan.reference!r} has no {metric}: no paired differences")
    else:
        for result in results:
            if result is not reference:
                differences[result.variant.name] = {
                    half: paired_difference(reference.values[half], result.values[half]) for half in HALVES
                }
    for result in results:
        notes += [f"{result.variant.name}, seed {seed}: {half} half missing" for seed, half in result.incomplete.items()]
        absent = sorted(set(settings.seeds) - set(result.seeds) - set(result.incomplete))
        if absent:
            notes.append(f"{result.variant.name}: no results for seed(s) {', '.join(map(str, absent))}")
    return MetricTable(stage, metric, plan.reference, results, differences, notes)


@dataclass
class Selection:
    by: str
    best: str
    mean: float
    versus_reference: PairedDifference | None
    text: str


def select_best(table: MetricTable, by: str = "hm") -> Selection | None:
    """The variant with the best mean ``by`` (ties: plan order) and its paired difference to the reference."""
    ranked = [(result.stats(by)[0], -index, result) for index, result in enumerate(table.results) if result.seeds]
    if not ranked:
        return None
    mean, _, best = max(ranked, key=lambda item: item[:2])
    label = by.upper() if by == "hm" else by.capitalize()
    text = f"best mean {label} ({table.metric}, on {table.stage.name}): {best.variant.name} ({mean:.2f})"
    versus = table.differences.get(best.variant.name, {}).get(by)
    if best.variant.name == table.reference:
        text += "; it is the reference itself"
        others = [item for item in ranked if item[2] is not best]
        if others:
            runner_up = max(others, key=lambda item: item[:2])[2].variant.name
            text += f"; runner-up {runner_up}: {format_difference(table.differences[runner_up][by])}"
    elif versus is not None:
        resolved = "resolved" if versus.resolved else "unresolved: within seed noise, more seeds needed"
        text += f"; vs the reference {table.reference}: {format_difference(versus)} over {versus.n} seed(s) ({resolved})"
    if len({result.seeds for _, _, result in ranked}) > 1:
        text += " [warning: the variants' means use different seeds]"
    return Selection(by, best.variant.name, mean, versus, text)
