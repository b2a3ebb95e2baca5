"""The base-to-new table: Base, New and HM per dataset and method, and the Average over datasets.

* A run is the *base* or the *new* half by its ``subsample`` field, or else by the ``train_base`` /
  ``test_new`` folder it lies in. Only seeds that have both halves enter a row's means, so Base, New
  and HM always describe the same seeds; a seed with only one half is listed in the row's
  ``incomplete`` column and in the warnings, never dropped silently.
* **HM** is ``2*B*N / (B+N)`` of the *seed-averaged* Base and New, as the CoOp/CoCoOp papers report
  it. The mean of the per-seed HMs is given as well (``hm_per_seed_mean``, CSV only); the two differ
  slightly.
* Spread and Average rows: :mod:`clipprompt.results.formatting`, :mod:`clipprompt.results.common`.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Sequence

from clipprompt.errors import UserError
from clipprompt.results.common import AVERAGE_NOTE, DatasetLabel, SeedTable, dataset_averages
from clipprompt.results.formatting import (
    csv_number,
    describe_method,
    format_mean_spread,
    format_number,
    format_seeds,
    shots_text,
    spread,
    spread_column,
    spread_note,
)
from clipprompt.results.order import AVERAGE_LABEL, shots_key, sort_key_dataset, sort_key_trainer
from clipprompt.results.paired import harmonic_mean
from clipprompt.results.records import (
    BASE_HALF_FOLDER,
    DEFAULT_METRIC,
    NEW_HALF_FOLDER,
    RunResult,
    drop_duplicates,
    select_metric,
)


@dataclass
class Base2NewRow(DatasetLabel):
    """One dataset (or the Average over datasets) for one trainer, config and shots."""

    dataset: str
    trainer: str
    config: str
    shots: int | None
    base_mean: float | None
    base_spread: float | None
    new_mean: float | None
    new_spread: float | None
    hm: float | None  # HM of base_mean and new_mean
    hm_per_seed_mean: float | None  # mean over seeds of each seed's HM (None for Average rows)
    seeds: tuple[int, ...]  # the seeds the means use (both halves present)
    incomplete: tuple[str, ...] = ()  # e.g. "seed3: base only"
    num_datasets: int = 1
    base_by_seed: dict = field(default_factory=dict, repr=False)
    new_by_seed: dict = field(default_factory=dict, repr=False)
    backbones: tuple[str, ...] = ()  # the backbones its runs name (``-`` unrecorded); () for Average rows


@dataclass
class Base2NewTable(SeedTable):
    """Per-dataset rows, Average rows (one per trainer/config/shots) and warnings."""

    metric: str
    ci95: bool
    rows: list[Base2NewRow]
    averages: list[Base2NewRow]
    warnings: list[str] = field(default_factory=list)

    kind = "base2new"
    heading = "Base-to-new generalisation"

    @property
    def all_rows(self) -> list[Base2NewRow]:
        return self.rows + self.averages

    @property
    def datasets(self) -> list[str]:
        return sorted({row.dataset for row in self.rows}, key=sort_key_dataset)

    def display_headers(self) -> list[str]:
        headers = ["Dataset", "Trainer", "Config", "Shots", "Base", "New", "HM", "Seeds"]
        if any(row.incomplete for row in self.all_rows):
            headers.append("Incomplete")
        return headers

    def display_rows(self) -> list[list[str]]:
        with_incomplete = any(row.incomplete for row in self.all_rows)
        lines = []
        for row in self.all_rows:
            line = [
                row.label,
                row.trainer,
                row.config,
                shots_text(row.shots, "-"),
                format_mean_spread(row.base_mean, row.base_spread),
                format_mean_spread(row.new_mean, row.new_spread),
                format_number(row.hm),
                format_seeds(row.seeds) or "-",
            ]
            if with_incomplete:
                line.append("; ".join(row.incomplete))
            lines.append(line)
        return lines

    def csv_headers(self) -> list[str]:
        return csv_headers_base2new(self.ci95)

    def csv_rows(self) -> list[list[str]]:
        return [
            [
                row.dataset,
                row.trainer,
                row.config,
                shots_text(row.shots, ""),
                self.metric,
                csv_number(row.base_mean),
                csv_number(row.base_spread),
                csv_number(row.new_mean),
                csv_number(row.new_spread),
                csv_number(row.hm),
                csv_number(row.hm_per_seed_mean),
                str(len(row.seeds)),
                " ".join(str(seed) for seed in sorted(row.seeds)),
                str(row.num_datasets),
                "; ".join(row.incomplete),
            ]
            for row in self.all_rows
        ]

    def notes(self) -> list[str]:
        return [
            "HM = 2*Base*New/(Base+New) of the seed-averaged Base and New (as in the CoOp/CoCoOp papers).",
            "Average (N) = mean of Base and of New over N datasets; its HM is the HM of those two means; "
            + AVERAGE_NOTE,
            spread_note(self.ci95) + " Only seeds with both halves (train_base and test_new) are counted.",
        ]


def csv_headers_base2new(ci95: bool, spread_name: str | None = None) -> list[str]:
    """The CSV header; ``spread_name`` overrides the spread columns' suffix (older files used ``std``/``ci95``)."""
    suffix = spread_name or spread_column(ci95)
    return [
        "dataset",
        "trainer",
        "config",
        "shots",
        "metric",
        "base_mean",
        f"base_{suffix}",
        "new_mean",
        f"new_{suffix}",
        "hm",
        "hm_per_seed_mean",
        "num_seeds",
        "seeds",
        "num_datasets",
        "incomplete",
    ]


def base_to_new_table(
    runs: Sequence[RunResult],
    metric: str = DEFAULT_METRIC,
    *,
    ci95: bool = False,
) -> Base2NewTable:
    """Build the base-to-new table from the runs that are a base or new half.

    Runs that are neither (``half is None``) are ignored here; see
    :func:`clipprompt.results.summary.summary_table` for them.
    """
    warnings: list[str] = []
    halves = [run for run in runs if run.half is not None]
    if not halves:
        raise UserError(
            f"no base-to-new results (no {BASE_HALF_FOLDER}/ or {NEW_HALF_FOLDER}/ folders, "
            "no subsample base/new) among the results"
        )
    pairs = select_metric(halves, metric, warnings)
    pairs = drop_duplicates(
        pairs, lambda run: (run.dataset, run.trainer, run.config, run.shots, run.seed, run.half), warnings
    )

    groups: dict[tuple, dict[str, dict[int, float]]] = {}
    backbones: dict[tuple, set[str]] = {}
    for run, value in pairs:
        key = (run.dataset, run.trainer, run.config, run.shots)
        groups.setdefault(key, {"base": {}, "new": {}})[run.half][run.seed] = value
        backbones.setdefault(key, set()).add(str(run.record.get("backbone") or "-"))

    rows = []
    for (dataset, trainer, config, shots), by_half in groups.items():
        base_by_seed, new_by_seed = by_half["base"], by_half["new"]
        complete = sorted(set(base_by_seed) & set(new_by_seed))
        incomplete = []
        for seed in sorted(set(base_by_seed) ^ set(new_by_seed)):
            has, lacks = ("base", NEW_HALF_FOLDER) if seed in base_by_seed else ("new", BASE_HALF_FOLDER)
            incomplete.append(f"seed{seed}: {has} only")
            warnings.append(
                f"{describe_method(dataset, trainer, config, shots)}: seed {seed} has only the {has} result "
                f"({lacks} missing); left out of the means"
            )
        if complete:
            base_values = [base_by_seed[seed] for seed in complete]
            new_values = [new_by_seed[seed] for seed in complete]
            base_mean, new_mean = statistics.fmean(base_values), statistics.fmean(new_values)
            row = Base2NewRow(
                dataset=dataset,
                trainer=trainer,
                config=config,
                shots=shots,
                base_mean=base_mean,
                base_spread=spread(base_values, ci95),
                new_mean=new_mean,
                new_spread=spread(new_values, ci95),
                hm=harmonic_mean(base_mean, new_mean),
                hm_per_seed_mean=statistics.fmean(
                    harmonic_mean(base, new) for base, new in zip(base_values, new_values)
                ),
                seeds=tuple(complete),
                incomplete=tuple(incomplete),
                base_by_seed={seed: base_by_seed[seed] for seed in complete},
                new_by_seed={seed: new_by_seed[seed] for seed in complete},
                backbones=tuple(sorted(backbones[dataset, trainer, config, shots])),
            )
        else:
            row = Base2NewRow(
                dataset, trainer, config, shots, None, None, None, None, None, None, (), tuple(incomplete)
            )
        rows.append(row)

    rows.sort(
        key=lambda row: (
            sort_key_dataset(row.dataset),
            sort_key_trainer(row.trainer),
            row.config,
            shots_key(row.shots),
        )
    )
    averages = _base_to_new_averages(rows, ci95, warnings)
    return Base2NewTable(metric=metric, ci95=ci95, rows=rows, averages=averages, warnings=warnings)


def _base_to_new_averages(rows: Sequence[Base2NewRow], ci95: bool, warnings: list[str]) -> list[Base2NewRow]:
    """One Average per (trainer, config, shots) once the table has two datasets; one that misses some of
    them is kept with a warning."""
    all_datasets = {row.dataset for row in rows}
    if len(all_datasets) < 2:
        return []
    groups = dataset_averages((row for row in rows if row.seeds), lambda row: (row.trainer, row.config, row.shots))
    averages = []
    for (trainer, config, shots), average in groups.items():
        covered = {row.dataset for row in average.members}
        if covered != all_datasets:
            missing = sorted(all_datasets - covered, key=sort_key_dataset)
            warnings.append(
                f"Average for {trainer} / {config}"
                f"{'' if shots is None else f' / {shots} shots'} covers {len(covered)} of "
                f"{len(all_datasets)} datasets (missing: {', '.join(missing)}); "
                "not comparable with averages over all of them"
            )
        base_avg, new_avg = average.mean("base_mean"), average.mean("new_mean")
        averages.append(
            Base2NewRow(
                dataset=AVERAGE_LABEL,
                trainer=trainer,
                config=config,
                shots=shots,
                base_mean=base_avg,
                base_spread=average.spread("base_by_seed", ci95),
                new_mean=new_avg,
                new_spread=average.spread("new_by_seed", ci95),
                hm=harmonic_mean(base_avg, new_avg),
                hm_per_seed_mean=None,
                seeds=average.seeds,
                num_datasets=len(average.members),
            )
        )
    averages.sort(key=lambda row: (sort_key_trainer(row.trainer), row.config, shots_key(row.shots)))
    return averages
