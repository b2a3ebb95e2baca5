"""The summary table: mean ± spread over seeds of every run that is not a base-to-new half
(all-class few-shot, cross-dataset, domain generalisation), with an Average over datasets per method.

Spread and Average rows: :mod:`clipprompt.results.formatting`, :mod:`clipprompt.results.common`.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Sequence

from clipprompt.results.common import AVERAGE_NOTE, DatasetLabel, SeedTable, dataset_averages
from clipprompt.results.formatting import (
    csv_number,
    format_mean_spread,
    format_seeds,
    shots_text,
    spread,
    spread_column,
    spread_note,
)
from clipprompt.results.order import AVERAGE_LABEL, shots_key, sort_key_dataset, sort_key_trainer
from clipprompt.results.records import DEFAULT_METRIC, RunResult, drop_duplicates, select_metric


@dataclass
class SummaryRow(DatasetLabel):
    """Mean and spread over seeds for one dataset (or the Average over datasets)."""

    protocol: str
    dataset: str
    trainer: str
    config: str
    shots: int | None
    subsample: str
    mean: float
    spread: float | None
    seeds: tuple[int, ...]
    num_datasets: int = 1
    by_seed: dict = field(default_factory=dict, repr=False)


@dataclass
class SummaryTable(SeedTable):
    """Mean ± spread per (protocol, dataset, trainer, config, shots, subsample)."""

    metric: str
    ci95: bool
    rows: list[SummaryRow]
    averages: list[SummaryRow]
    warnings: list[str] = field(default_factory=list)

    kind = "summary"
    heading = "Results"

    @property
    def all_rows(self) -> list[SummaryRow]:
        """Rows protocol by protocol, each protocol's Average rows right after its datasets."""
        ordered = []
        for protocol in sorted({row.protocol for row in self.rows}):
            ordered += [row for row in self.rows if row.protocol == protocol]
            ordered += [row for row in self.averages if row.protocol == protocol]
        return ordered

    def _optional_columns(self) -> tuple[bool, bool]:
        show_protocol = len({row.protocol for row in self.all_rows}) > 1
        show_subsample = any(row.subsample not in ("", "all") for row in self.all_rows)
        return show_protocol, show_subsample

    def display_headers(self) -> list[str]:
        show_protocol, show_subsample = self._optional_columns()
        headers = ["Protocol"] if show_protocol else []
        headers += ["Dataset", "Trainer", "Config", "Shots"]
        if show_subsample:
            headers.append("Classes")
        return headers + [self.metric, "Seeds"]

    def display_rows(self) -> list[list[str]]:
        show_protocol, show_subsample = self._optional_columns()
        lines = []
        for row in self.all_rows:
            line = [row.protocol] if show_protocol else []
            line += [row.label, row.trainer, row.config, shots_text(row.shots, "-")]
            if show_subsample:
                line.append(row.subsample or "-")
            line += [format_mean_spread(row.mean, row.spread), format_seeds(row.seeds) or "-"]
            lines.append(line)
        return lines

    def csv_headers(self) -> list[str]:
        return csv_headers_summary(self.ci95)

    def csv_rows(self) -> list[list[str]]:
        return [
            [
                row.protocol,
                row.dataset,
                row.trainer,
                row.config,
                shots_text(row.shots, ""),
                row.subsample,
                self.metric,
                csv_number(row.mean),
                csv_number(row.spread),
                str(len(row.seeds)),
                " ".join(str(seed) for seed in sorted(row.seeds)),
                str(row.num_datasets),
            ]
            for row in self.all_rows
        ]

    def notes(self) -> list[str]:
        return [
            spread_note(self.ci95),
            "Average (N) = mean over N datasets of the seed-averaged values; " + AVERAGE_NOTE,
        ]


def csv_headers_summary(ci95: bool, spread_name: str | None = None) -> list[str]:
    """The CSV header; ``spread_name`` overrides the spread column (older files used ``std``/``ci95``)."""
    return [
        "protocol",
        "dataset",
        "trainer",
        "config",
        "shots",
        "subsample",
        "metric",
        "mean",
        spread_name or spread_column(ci95),
        "num_seeds",
        "seeds",
        "num_datasets",
    ]


def summary_table(
    runs: Sequence[RunResult],
    metric: str = DEFAULT_METRIC,
    *,
    ci95: bool = False,
) -> SummaryTable:
    """Mean ± spread over seeds per (protocol, dataset, trainer, config, shots, subsample).

    Adds an Average row per (protocol, trainer, config, shots, subsample) when
    it spans two or more datasets (e.g. the ten target datasets of the
    cross-dataset protocol).
    """
    warnings: list[str] = []
    pairs = select_metric(runs, metric, warnings)

    def group_key(run: RunResult) -> tuple:
        return (run.protocol, run.dataset, run.trainer, run.config, run.shots, run.subsample)

    pairs = drop_duplicates(pairs, lambda run: group_key(run) + (run.half, run.seed), warnings)
    groups: dict[tuple, dict[int, float]] = {}
    for run, value in pairs:
        # A base-to-new run shown here keeps its half in the subsample column.
        groups.setdefault(group_key(run), {})[run.seed] = value

    rows = []
    for (protocol, dataset, trainer, config, shots, subsample), by_seed in groups.items():
        values = [by_seed[seed] for seed in sorted(by_seed)]
        rows.append(
            SummaryRow(
                protocol=protocol,
                dataset=dataset,
                trainer=trainer,
                config=config,
                shots=shots,
                subsample=subsample,
                mean=statistics.fmean(values),
                spread=spread(values, ci95),
                seeds=tuple(sorted(by_seed)),
                by_seed=dict(by_seed),
            )
        )

    def method(row: SummaryRow) -> tuple:
        return (row.protocol, row.trainer, row.config, row.shots, row.subsample)

    def method_order(row: SummaryRow) -> tuple:
        return (row.protocol, sort_key_trainer(row.trainer), row.config, shots_key(row.shots), row.subsample)

    rows.sort(key=lambda row: (row.protocol, sort_key_dataset(row.dataset)) + method_order(row)[1:])
    averages = [
        SummaryRow(
            protocol=protocol,
            dataset=AVERAGE_LABEL,
            trainer=trainer,
            config=config,
            shots=shots,
            subsample=subsample,
            mean=average.mean("mean"),
            spread=average.spread("by_seed", ci95),
            seeds=average.seeds,
            num_datasets=len(average.members),
        )
        for (protocol, trainer, config, shots, subsample), average in dataset_averages(rows, method).items()
        if len(average.members) >= 2
    ]
    averages.sort(key=method_order)
    return SummaryTable(metric=metric, ci95=ci95, rows=rows, averages=averages, warnings=warnings)
