"""One call for the CLI and the plot: load a root and build the base-to-new and the summary table."""

from __future__ import annotations

import os
from dataclasses import dataclass

from clipprompt.results.base2new import Base2NewTable, base_to_new_table
from clipprompt.results.records import DEFAULT_METRIC, LoadedResults, check_metric_name, load_results
from clipprompt.results.summary import SummaryTable, summary_table


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
