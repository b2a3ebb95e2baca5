"""The base-to-new table with the published numbers beside ours (``parse_test_res.py --published``).

:func:`with_published` wraps a :class:`~clipprompt.results.base2new.Base2NewTable`: every row gains
the published Base, New and HM of its trainer and dataset (:mod:`clipprompt.results.published`) and
the differences ours minus published; a row with nothing published shows ``-`` there. A published
number describes CLIP ViT-B/16 at 16 shots, and an Average the mean over the protocol's 11 datasets,
so it stands beside one of our rows only when that row is like it:

* its shots are :data:`~clipprompt.results.published.SHOTS` and every run of it names the backbone
  :data:`~clipprompt.results.published.BACKBONE`;
* an Average row averages exactly the 11 datasets of
  :data:`~clipprompt.results.published.BASE_TO_NEW_DATASETS`.

A row that has published numbers but is not like them shows ``-`` and a warning says why. A second
report of the same method (CoOp as KgCoOp ran it) gets a line of its own under the first, its
``Published in`` column naming the report. The table has its own files (``<prefix>_base2new_published``)
so that the plain table's are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clipprompt.errors import UserError
from clipprompt.results.base2new import Base2NewRow, Base2NewTable, csv_headers_base2new
from clipprompt.results.formatting import csv_number, describe_method, format_number
from clipprompt.results.published import (
    BACKBONE,
    BASE_TO_NEW_DATASETS,
    PUBLISHED_BASE_TO_NEW,
    SHOTS,
    SOURCES,
)
from clipprompt.results.records import DEFAULT_METRIC

PUBLISHED_DISPLAY_HEADERS = ["Pub. Base", "Pub. New", "Pub. HM", "Δ Base", "Δ New", "Δ HM", "Published in"]
PUBLISHED_CSV_HEADERS = [
    "published_base",
    "published_new",
    "published_hm",
    "diff_base",
    "diff_new",
    "diff_hm",
    "published_in",
]


@dataclass(frozen=True)
class Published:
    """One published Base / New / HM and the documents that report it."""

    base: float
    new: float
    hm: float
    reported_in: tuple[str, ...]

    @property
    def where(self) -> str:
        return ", ".join(self.reported_in)


def published_rows(trainer: str, dataset: str) -> list[Published]:
    """The published rows of ``trainer`` on ``dataset`` (a Dassl name or ``Average``), first the one
    compared with ours; ``[]`` when nothing is published."""
    return [
        Published(entry["base"], entry["new"], entry["hm"], tuple(entry["reported_in"]))
        for entry in PUBLISHED_BASE_TO_NEW.get(trainer, [])
        if entry["dataset"] == dataset
    ]


def csv_headers_base2new_published(ci95: bool, spread_name: str | None = None) -> list[str]:
    return csv_headers_base2new(ci95, spread_name) + PUBLISHED_CSV_HEADERS


def _signed(value: float | None) -> str:
    """``+0.38``, ``-2.56``; ``+0.00`` for a difference that rounds to zero; ``-`` for none."""
    return "-" if value is None else f"{round(value, 2) or 0.0:+.2f}"


def _difference(ours: float | None, published: float | None) -> float | None:
    return None if ours is None or published is None else ours - published


@dataclass
class PublishedLine:
    """One line of the table: our row and the published numbers beside it (None: nothing to show)."""

    row: Base2NewRow
    published: Published | None

    def values(self) -> list[float | None]:
        """Published Base, New, HM."""
        published = self.published
        return [None] * 3 if published is None else [published.base, published.new, published.hm]

    def differences(self) -> list[float | None]:
        """Ours minus published: Base, New, HM."""
        ours = [self.row.base_mean, self.row.new_mean, self.row.hm]
        return [_difference(mine, theirs) for mine, theirs in zip(ours, self.values())]

    def cells(self, number, difference, nothing: str) -> list[str]:
        """The added cells, numbers written by ``number``, differences by ``difference``."""
        where = nothing if self.published is None else self.published.where
        numbers = [number(value) for value in self.values()]
        return numbers + [difference(value) for value in self.differences()] + [where]


@dataclass
class Base2NewPublishedTable:
    """A base-to-new table with published Base / New / HM and ours minus published beside each row."""

    table: Base2NewTable
    lines: list[PublishedLine]
    published_warnings: list[str] = field(default_factory=list)

    kind = "base2new_published"

    @property
    def metric(self) -> str:
        return self.table.metric

    @property
    def ci95(self) -> bool:
        return self.table.ci95

    @property
    def warnings(self) -> list[str]:
        return self.table.warnings + self.published_warnings

    def title(self) -> str:
        return self.table.title() + f"; published: CLIP {BACKBONE}, {SHOTS} shots"

    def display_headers(self) -> list[str]:
        return self.table.display_headers() + PUBLISHED_DISPLAY_HEADERS

    def display_rows(self) -> list[list[str]]:
        ours = {id(row): cells for row, cells in zip(self.table.all_rows, self.table.display_rows())}
        return [ours[id(line.row)] + line.cells(format_number, _signed, "-") for line in self.lines]

    def csv_headers(self) -> list[str]:
        return csv_headers_base2new_published(self.ci95)

    def csv_rows(self) -> list[list[str]]:
        ours = {id(row): cells for row, cells in zip(self.table.all_rows, self.table.csv_rows())}
        return [ours[id(line.row)] + line.cells(csv_number, csv_number, "") for line in self.lines]

    def notes(self) -> list[str]:
        sources = "; ".join(f"{name}: {where}" for name, where in SOURCES.items())
        return self.table.notes() + [
            f"Pub. = published for CLIP {BACKBONE}, {SHOTS} shots; Δ = ours minus published. Shown only "
            f"beside a row at {SHOTS} shots whose runs all name the backbone {BACKBONE}, and for an Average "
            f"only over the {len(BASE_TO_NEW_DATASETS)} datasets of the protocol; '-' where nothing comparable "
            "is published (only 11-dataset averages are bundled).",
            f"Published in: {sources}.",
        ]


def _row_backbones(row: Base2NewRow, table: Base2NewTable) -> set[str]:
    """The backbones of a dataset row, or of every dataset an Average row averages."""
    if not row.is_average:
        return set(row.backbones)
    return {backbone for member in _average_members(row, table) for backbone in member.backbones}


def _average_members(row: Base2NewRow, table: Base2NewTable) -> list[Base2NewRow]:
    """The dataset rows an Average row averages (those of its method with seeds, as base2new does)."""
    return [member for member in table.rows
            if (member.trainer, member.config, member.shots) == (row.trainer, row.config, row.shots) and member.seeds]


def _mismatch(row: Base2NewRow, table: Base2NewTable) -> str | None:
    """Why the published numbers do not describe ``row``; None when they do."""
    if row.shots != SHOTS:
        return f"its shots are {'unrecorded' if row.shots is None else row.shots}, not {SHOTS}"
    backbones = _row_backbones(row, table)
    if backbones != {BACKBONE}:
        return f"its runs name the backbone(s) {', '.join(sorted(backbones)) or 'none'}, not {BACKBONE}"
    if row.is_average:
        covered = {member.dataset for member in _average_members(row, table)}
        if covered != set(BASE_TO_NEW_DATASETS):
            missing = [name for name in BASE_TO_NEW_DATASETS if name not in covered]
            extra = sorted(covered - set(BASE_TO_NEW_DATASETS))
            parts = [f"{len(missing)} of the {len(BASE_TO_NEW_DATASETS)} datasets missing"] if missing else []
            parts += [f"also averages {', '.join(extra)}"] if extra else []
            return "its average is not over the protocol's 11 datasets (" + "; ".join(parts) + ")"
    return None


def with_published(table: Base2NewTable) -> Base2NewPublishedTable:
    """``table`` with the published numbers beside each row. Accuracy only: the papers publish nothing else."""
    if table.metric != DEFAULT_METRIC:
        raise UserError(
            f"--published compares with published accuracy; it cannot be used with --metric {table.metric}"
        )
    lines: list[PublishedLine] = []
    warnings: list[str] = []
    for row in table.all_rows:
        published = published_rows(row.trainer, row.dataset)
        reason = _mismatch(row, table) if published else None
        if reason:
            label = row.label if row.is_average else row.dataset
            warnings.append(
                f"{describe_method(label, row.trainer, row.config, row.shots)}: published numbers not shown, "
                f"{reason}"
            )
            published = []
        lines.append(PublishedLine(row, published[0] if published else None))
        lines += [PublishedLine(row, other) for other in published[1:]]
    return Base2NewPublishedTable(table=table, lines=lines, published_warnings=warnings)
