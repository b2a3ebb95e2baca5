"""The tables papers report, built from loaded results: Base/New/HM (base-to-new) and a summary table.

Conventions (stated here once, used everywhere below):

* **Spread** (``±``) is the *sample* standard deviation over seeds (``ddof=1``,
  as :func:`clipprompt.results.paired.mean_and_std`); with ``ci95=True`` it is the
  half-width of the 95% Student-t interval of the mean,
  ``t(0.975, n-1) * std / sqrt(n)`` (:func:`clipprompt.results.paired.t_half_width`),
  the interval the paired comparisons use. One seed has no spread (shown as
  the mean alone).
* **Base-to-new**: a run is the *base* or the *new* half by its
  ``subsample`` field, or else by the ``train_base`` / ``test_new`` folder it
  lies in. Only seeds that have both halves enter a row's means, so Base, New
  and HM always describe the same seeds; a seed with only one half is listed
  in the row's ``incomplete`` column and in the warnings, never dropped
  silently.
* **HM** is ``2*B*N / (B+N)`` of the *seed-averaged* Base and New, as the
  CoOp/CoCoOp papers report it. The mean of the per-seed HMs is given as well
  (``hm_per_seed_mean``, CSV only); the two differ slightly.
* **Average row** (one per method, i.e. trainer, config and shots, and in the
  summary table protocol and subsample): the plain mean over datasets of the
  seed-averaged values (Base/New: HM of the two averages, as in CoCoOp's
  Table 1). Its spread is the spread over seeds of the dataset-averaged value,
  using the seeds every averaged dataset has.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from clipprompt.errors import UserError
from clipprompt.results.paired import harmonic_mean, mean_and_std, t_half_width
from clipprompt.results.records import (
    BASE_HALF_FOLDER,
    DEFAULT_METRIC,
    NEW_HALF_FOLDER,
    LoadedResults,
    RunResult,
    check_metric_name,
    drop_duplicates,
    load_results,
    select_metric,
)

# Row order of CoOp/CoCoOp's tables (Dassl registry names); others follow
# alphabetically.
PAPER_DATASET_ORDER = (
    "ImageNet",
    "Caltech101",
    "OxfordPets",
    "StanfordCars",
    "OxfordFlowers",
    "Food101",
    "FGVCAircraft",
    "SUN397",
    "DescribableTextures",
    "EuroSAT",
    "UCF101",
    "ImageNetV2",
    "ImageNetSketch",
    "ImageNetA",
    "ImageNetR",
)
TRAINER_ORDER = ("ZeroshotCLIP", "CoOp", "CoCoOp", "KgCoOp", "ProGrad", "DualPromptMI")

AVERAGE_LABEL = "Average"


# --------------------------------------------------------------------------
# Spread and formatting
# --------------------------------------------------------------------------


def spread(values: Sequence[float], ci95: bool = False) -> float | None:
    """Sample std (ddof=1) over seeds, or with ``ci95`` the half-width of the 95% t-interval of the
    mean; None for a single value."""
    if not values:
        raise ValueError("spread of no values")
    _, std = mean_and_std(values)
    if std is None:
        return None
    return t_half_width(std, len(values)) if ci95 else std


def spread_caption(ci95: bool) -> str:
    """What ``±`` means in a table, for its title."""
    return "mean ± 95% t-interval over seeds" if ci95 else "mean ± sample std over seeds"


def spread_note(ci95: bool) -> str:
    """The same, spelled out, for a table's notes."""
    if ci95:
        return ("± = half-width of the 95% Student-t interval of the mean over seeds, "
                "t(0.975, n-1) * sample std / sqrt(n); one seed has no ±.")
    return "± = sample standard deviation over seeds (ddof=1); one seed has no ±."


def spread_column(ci95: bool) -> str:
    """The CSV column suffix of the spread: ``sample_std`` or ``ci95_t``."""
    return "ci95_t" if ci95 else "sample_std"


def format_mean_spread(mean: float | None, spread_value: float | None, digits: int = 2) -> str:
    """``82.69 ± 0.55``; just the mean without a spread; ``-`` without a mean."""
    if mean is None:
        return "-"
    if spread_value is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {spread_value:.{digits}f}"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _csv_number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _format_seeds(seeds: Iterable[int]) -> str:
    return ",".join(str(seed) for seed in sorted(seeds))


def _shots_text(shots: int | None, missing: str) -> str:
    return missing if shots is None else str(shots)


def _describe(dataset: str, trainer: str, config: str, shots: int | None) -> str:
    shots_text = "" if shots is None else f" / {shots} shots"
    return f"{dataset} / {trainer} / {config}{shots_text}"


def _sort_key_dataset(name: str) -> tuple:
    if name == AVERAGE_LABEL:
        return (2, 0, name)
    if name in PAPER_DATASET_ORDER:
        return (0, PAPER_DATASET_ORDER.index(name), name)
    return (1, 0, name.lower())


def _sort_key_trainer(name: str) -> tuple:
    if name in TRAINER_ORDER:
        return (0, TRAINER_ORDER.index(name), name)
    return (1, 0, name.lower())


def _shots_key(shots: int | None) -> tuple:
    return (shots is None, shots or 0)


# --------------------------------------------------------------------------
# What both tables share: the dataset label, the average over datasets, the captions
# --------------------------------------------------------------------------


class _DatasetLabel:
    """The dataset column of a row: its dataset, or ``Average (N)`` for the average over N datasets."""

    dataset: str
    num_datasets: int

    @property
    def is_average(self) -> bool:
        return self.dataset == AVERAGE_LABEL

    @property
    def label(self) -> str:
        return f"{AVERAGE_LABEL} ({self.num_datasets})" if self.is_average else self.dataset


@dataclass(frozen=True)
class _DatasetAverage:
    """One method's rows over several datasets, and the seeds all of them have."""

    members: list
    seeds: tuple[int, ...]

    def mean(self, attribute: str) -> float:
        """Plain mean over datasets of each row's ``attribute`` (a seed-averaged value)."""
        return statistics.fmean(getattr(row, attribute) for row in self.members)

    def spread(self, by_seed_attribute: str, ci95: bool) -> float | None:
        """Spread over the common seeds of the dataset-averaged value ({seed: value} at ``by_seed_attribute``)."""
        if not self.seeds:
            return None
        per_seed = [statistics.fmean(getattr(row, by_seed_attribute)[seed] for row in self.members)
                    for seed in self.seeds]
        return spread(per_seed, ci95)


def _dataset_averages(rows: Iterable, method: Callable[[object], tuple]) -> dict[tuple, _DatasetAverage]:
    """The rows grouped by ``method(row)``, each group with the seeds all its rows share."""
    groups: dict[tuple, list] = {}
    for row in rows:
        groups.setdefault(method(row), []).append(row)
    return {
        key: _DatasetAverage(members, tuple(sorted(set.intersection(*(set(row.seeds) for row in members)))))
        for key, members in groups.items()
    }


_AVERAGE_NOTE = ("its Seeds are those all N datasets have, and its ± is over the dataset-averaged values "
                 "of those seeds.")


class _SeedTable:
    """Captions of a table over seeds; subclasses have ``metric``, ``ci95`` and ``heading``."""

    metric: str
    ci95: bool
    heading = ""

    @property
    def spread_name(self) -> str:
        """What the ± and the error bars are: ``sample std`` or ``95% t-interval``."""
        return "95% t-interval" if self.ci95 else "sample std"

    def title(self) -> str:
        return f"{self.heading}, metric: {self.metric} (%), {spread_caption(self.ci95)}"


# --------------------------------------------------------------------------
# Base-to-new table
# --------------------------------------------------------------------------


@dataclass
class Base2NewRow(_DatasetLabel):
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


@dataclass
class Base2NewTable(_SeedTable):
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
        return sorted({row.dataset for row in self.rows}, key=_sort_key_dataset)

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
                _shots_text(row.shots, "-"),
                format_mean_spread(row.base_mean, row.base_spread),
                format_mean_spread(row.new_mean, row.new_spread),
                _fmt(row.hm),
                _format_seeds(row.seeds) or "-",
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
                _shots_text(row.shots, ""),
                self.metric,
                _csv_number(row.base_mean),
                _csv_number(row.base_spread),
                _csv_number(row.new_mean),
                _csv_number(row.new_spread),
                _csv_number(row.hm),
                _csv_number(row.hm_per_seed_mean),
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
            + _AVERAGE_NOTE,
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
    :func:`summary_table` for them.
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
    for run, value in pairs:
        key = (run.dataset, run.trainer, run.config, run.shots)
        groups.setdefault(key, {"base": {}, "new": {}})[run.half][run.seed] = value

    rows = []
    for (dataset, trainer, config, shots), by_half in groups.items():
        base_by_seed, new_by_seed = by_half["base"], by_half["new"]
        complete = sorted(set(base_by_seed) & set(new_by_seed))
        incomplete = []
        for seed in sorted(set(base_by_seed) ^ set(new_by_seed)):
            has, lacks = ("base", NEW_HALF_FOLDER) if seed in base_by_seed else ("new", BASE_HALF_FOLDER)
            incomplete.append(f"seed{seed}: {has} only")
            warnings.append(
                f"{_describe(dataset, trainer, config, shots)}: seed {seed} has only the {has} result "
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
            )
        else:
            row = Base2NewRow(
                dataset, trainer, config, shots, None, None, None, None, None, None, (), tuple(incomplete)
            )
        rows.append(row)

    rows.sort(
        key=lambda row: (
            _sort_key_dataset(row.dataset),
            _sort_key_trainer(row.trainer),
            row.config,
            _shots_key(row.shots),
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
    groups = _dataset_averages((row for row in rows if row.seeds), lambda row: (row.trainer, row.config, row.shots))
    averages = []
    for (trainer, config, shots), average in groups.items():
        covered = {row.dataset for row in average.members}
        if covered != all_datasets:
            missing = sorted(all_datasets - covered, key=_sort_key_dataset)
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
    averages.sort(key=lambda row: (_sort_key_trainer(row.trainer), row.config, _shots_key(row.shots)))
    return averages


# --------------------------------------------------------------------------
# Summary table (all-class few-shot, cross-dataset, domain generalisation)
# --------------------------------------------------------------------------


@dataclass
class SummaryRow(_DatasetLabel):
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
class SummaryTable(_SeedTable):
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
            line += [row.label, row.trainer, row.config, _shots_text(row.shots, "-")]
            if show_subsample:
                line.append(row.subsample or "-")
            line += [format_mean_spread(row.mean, row.spread), _format_seeds(row.seeds) or "-"]
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
                _shots_text(row.shots, ""),
                row.subsample,
                self.metric,
                _csv_number(row.mean),
                _csv_number(row.spread),
                str(len(row.seeds)),
                " ".join(str(seed) for seed in sorted(row.seeds)),
                str(row.num_datasets),
            ]
            for row in self.all_rows
        ]

    def notes(self) -> list[str]:
        return [
            spread_note(self.ci95),
            "Average (N) = mean over N datasets of the seed-averaged values; " + _AVERAGE_NOTE,
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
        return (row.protocol, _sort_key_trainer(row.trainer), row.config, _shots_key(row.shots), row.subsample)

    rows.sort(key=lambda row: (row.protocol, _sort_key_dataset(row.dataset)) + method_order(row)[1:])
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
        for (protocol, trainer, config, shots, subsample), average in _dataset_averages(rows, method).items()
        if len(average.members) >= 2
    ]
    averages.sort(key=method_order)
    return SummaryTable(metric=metric, ci95=ci95, rows=rows, averages=averages, warnings=warnings)


# --------------------------------------------------------------------------
# One call for the CLI and the plot
# --------------------------------------------------------------------------


@dataclass
class ResultsReport:
    """Everything found under a root: the base-to-new table and/or the summary table."""

    loaded: LoadedResults
    base2new: Base2NewTable | None
    summary: SummaryTable | None

    @property
    def tables(self) -> list:
        return [table for table in (self.base2new, self.summary) if table is not None]

    @property
    def warnings(self) -> list[str]:
        collected = list(self.loaded.warnings)
        for table in self.tables:
            collected.extend(table.warnings)
        return collected


def summarize(
    root: str | os.PathLike,
    metric: str = DEFAULT_METRIC,
    *,
    ci95: bool = False,
    strict: bool = False,
) -> ResultsReport:
    """Load ``root`` and build the base-to-new table (if the layout has one) and the summary table.

    Base-to-new runs go into the base-to-new table only; every other run
    goes into the summary table. One of the two may be None.
    """
    check_metric_name(metric)
    loaded = load_results(root, strict=strict)
    halves = [run for run in loaded.runs if run.half is not None]
    others = [run for run in loaded.runs if run.half is None]
    base2new = base_to_new_table(halves, metric, ci95=ci95) if halves else None
    summary = summary_table(others, metric, ci95=ci95) if others else None
    return ResultsReport(loaded=loaded, base2new=base2new, summary=summary)
