"""What the base-to-new and the summary table share: the dataset label, the average over datasets,
the captions.

**Average row** (one per method, i.e. trainer, config and shots, and in the summary table protocol
and subsample): the plain mean over datasets of the seed-averaged values (Base/New: HM of the two
averages, as in CoCoOp's Table 1). Its spread is the spread over seeds of the dataset-averaged value,
using the seeds every averaged dataset has.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable, Iterable

from clipprompt.results.formatting import spread, spread_caption
from clipprompt.results.order import AVERAGE_LABEL


class DatasetLabel:
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
class DatasetAverage:
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


def dataset_averages(rows: Iterable, method: Callable[[object], tuple]) -> dict[tuple, DatasetAverage]:
    """The rows grouped by ``method(row)``, each group with the seeds all its rows share."""
    groups: dict[tuple, list] = {}
    for row in rows:
        groups.setdefault(method(row), []).append(row)
    return {
        key: DatasetAverage(members, tuple(sorted(set.intersection(*(set(row.seeds) for row in members)))))
        for key, members in groups.items()
    }


AVERAGE_NOTE = ("its Seeds are those all N datasets have, and its ± is over the dataset-averaged values "
                "of those seeds.")


class SeedTable:
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
