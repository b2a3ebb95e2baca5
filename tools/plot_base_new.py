"""Scatter Base (x) against New (y) accuracy per trainer, over iso-HM curves.

    python -m tools.plot_base_new output/base2new --out base_new.png
    python -m tools.plot_base_new output/base2new --dataset EuroSAT --out eurosat.png

Uses the same aggregation as parse_test_res.py (clipprompt.results): one point
per (trainer, config, shots), averaged over datasets (the table's Average
rows), or that dataset's rows when the tree (or --dataset) holds a single
dataset. Error bars are the spread over seeds (the sample std, or with
--ci95 the 95% Student-t interval of the mean). The grey curves are points of equal harmonic mean
HM = 2BN/(B+N), so a point further up-right on them has a better trade-off.

Every method has its own colour and its own marker (a CPU benchmark method keeps its pair in every
plot), markers have a dark outline and are nudged apart where they would overlap (the error bars
stay at the true means), the legend sits outside the axes, and the title gives the number of seeds.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from clipprompt.errors import UserError, exit_status
from clipprompt.results import DEFAULT_METRIC, Base2NewRow, base_to_new_table, load_results

# 12 colours (tab10 plus black and gold) and 12 markers: the first 12 points differ in colour AND in
# marker, so no two methods of a benchmark (11 runs) can be told apart by one of them only; after
# that the colour shifts by one per round, so (marker, colour) pairs repeat only after 144 points.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p")
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#000000", "#b8860b")
# Each method of the CPU benchmarks keeps its style slot whatever else is plotted (a TRAINERS subset,
# the other benchmark), so one method looks the same in every plot; other names take the free slots.
STYLE_SLOTS = ("ZeroshotCLIP", "CoOp", "CoCoOp", "KgCoOp", "ProGrad", "MaPLe", "PromptSRC", "CoOp + ensemble",
               "DualPromptMI", "DualPromptMI (IVLP)", "DualPromptMI (MaPLe)", "ZeroshotCLIP2")
MARKER_SIZE = 8.0  # points
MIN_SEPARATION = MARKER_SIZE + 1.5  # points between marker centres, edges included, below which they are nudged
NICE_STEPS = (0.5, 1, 2, 2.5, 5, 10, 20)


def points_to_plot(rows: list[Base2NewRow], averages: list[Base2NewRow]) -> tuple[list[Base2NewRow], str]:
    """The rows to draw and a description: per-dataset rows for one dataset, else the Average rows."""
    datasets = sorted({row.dataset for row in rows})
    complete = [row for row in rows if row.seeds]
    if len(datasets) == 1:
        return complete, datasets[0]
    return averages, f"average over {len(datasets)} datasets"


# What a reader knows a (trainer, config) as, where its trainer name alone would mislead: a rule
# (trainer, config suffix) -> name. DualPromptMI with MI and augmentation off is CoOp plus the
# hand-crafted inference ensemble; its ``*_ivlp`` / ``*_maple`` / ``*_promptsrc`` configs run over those prompt
# learners.
READABLE_NAMES = (
    ("DualPromptMI", "_ensemble_only", "CoOp + ensemble"),
    ("DualPromptMI", "_ivlp", "DualPromptMI (IVLP)"),
    ("DualPromptMI", "_maple", "DualPromptMI (MaPLe)"),
    ("DualPromptMI", "_promptsrc", "DualPromptMI (PromptSRC)"),
)


def readable_name(trainer: str, config: str, names: dict[tuple[str, str], str] | None = None) -> str | None:
    """The reader's name for a (trainer, config): ``names`` (from --label) first, then READABLE_NAMES."""
    if names and (trainer, config) in names:
        return names[(trainer, config)]
    for rule_trainer, suffix, name in READABLE_NAMES:
        if trainer == rule_trainer and config.endswith(suffix):
            return name
    return None


def point_style(slot: int) -> tuple[str, str]:
    """The (marker, colour) of a style slot: the first 12 share neither; no two of the first 144 share both."""
    return MARKERS[slot % len(MARKERS)], COLOURS[(slot + slot // len(MARKERS)) % len(COLOURS)]


def point_styles(points: list[Base2NewRow], names: dict[tuple[str, str], str] | None = None) -> list[tuple[str, str]]:
    """One (marker, colour) per point, all different: a known method its STYLE_SLOTS slot, the rest
    (and a second config of a known method) the lowest free slots."""
    plain = [readable_name(row.trainer, row.config, names) or row.trainer for row in points]
    slots: list[int | None] = [None] * len(points)
    used: set[int] = set()
    for index, name in enumerate(plain):
        if name in STYLE_SLOTS and STYLE_SLOTS.index(name) not in used:
            slots[index] = STYLE_SLOTS.index(name)
            used.add(slots[index])
    free = (slot for slot in range(len(points) + len(STYLE_SLOTS)) if slot not in used)
    return [point_style(slot if slot is not None else next(free)) for slot in slots]


def marker_offsets(positions: list[tuple[float, float]], min_separation: float = MIN_SEPARATION) -> list[tuple[float, float]]:
    """Offsets (in points) that move apart markers whose centres (in points) lie closer than
    ``min_separation``: each group of such markers is spread evenly on a circle around its centre,
    neighbours ``min_separation`` apart; a lone marker keeps its place (offset 0)."""
    count = len(positions)
    parent = list(range(count))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(count):
        for j in range(i + 1, count):
            if math.dist(positions[i], positions[j]) < min_separation:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(count):
        groups.setdefault(root(i), []).append(i)
    offsets = [(0.0, 0.0)] * count
    for members in groups.values():
        if len(members) < 2:
            continue
        cx = sum(positions[i][0] for i in members) / len(members)
        cy = sum(positions[i][1] for i in members) / len(members)
        # keep the members' order around the centre (identical points: their order in the list)
        order = sorted(members, key=lambda i: (math.atan2(positions[i][1] - cy, positions[i][0] - cx), i))
        radius = min_separation / (2 * math.sin(math.pi / len(members)))
        start = math.atan2(positions[order[0]][1] - cy, positions[order[0]][0] - cx) if len(set(
            positions[i] for i in members)) > 1 else math.pi / 2
        for k, i in enumerate(order):
            angle = start + 2 * math.pi * k / len(members)
            offsets[i] = (cx + radius * math.cos(angle) - positions[i][0], cy + radius * math.sin(angle) - positions[i][1])
    return offsets


def seeds_text(points: list[Base2NewRow]) -> str:
    """"6 seeds", or "3-6 seeds" when the points average different numbers of seeds."""
    counts = sorted({len(row.seeds) for row in points})
    if len(counts) == 1:
        return f"{counts[0]} seed" + ("" if counts[0] == 1 else "s")
    return f"{counts[0]}-{counts[-1]} seeds"


def point_labels(points: list[Base2NewRow], names: dict[tuple[str, str], str] | None = None) -> list[str]:
    """The reader's name of a (trainer, config), else the trainer name, plus the config when that name
    is shared by several configs, plus shots when they vary."""
    plain = [readable_name(row.trainer, row.config, names) or row.trainer for row in points]
    configs_per_name: dict[str, set[str]] = {}
    for name, row in zip(plain, points):
        configs_per_name.setdefault(name, set()).add(row.config)
    several_shots = len({row.shots for row in points}) > 1
    labels = []
    for name, row in zip(plain, points):
        label = name
        if len(configs_per_name[name]) > 1:
            label += f" / {row.config}"
        if several_shots and row.shots is not None:
            label += f" ({row.shots}-shot)"
        labels.append(f"{label}: HM {row.hm:.2f}")
    return labels


def axis_range(centres: list[float], errors: list[float]) -> tuple[float, float]:
    low = min(c - e for c, e in zip(centres, errors))
    high = max(c + e for c, e in zip(centres, errors))
    margin = max(0.15 * (high - low), 2.0)
    return max(0.0, low - margin), min(100.0, high + margin)


def hm_levels(low: float, high: float, wanted: int = 7) -> list[float]:
    """Round HM values between low and high, about ``wanted`` of them."""
    step = next((s for s in NICE_STEPS if (high - low) / s <= wanted), NICE_STEPS[-1])
    first = math.ceil(low / step) * step
    levels = []
    value = first
    while value < high:
        levels.append(round(value, 2))
        value += step
    return levels


def figure(points: list[Base2NewRow], description: str, metric: str, spread_name: str,
           names: dict[tuple[str, str], str] | None = None):
    """The laid-out matplotlib figure (plot() saves it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.transforms import offset_copy

    base = [row.base_mean for row in points]
    new = [row.new_mean for row in points]
    base_err = [row.base_spread or 0.0 for row in points]
    new_err = [row.new_spread or 0.0 for row in points]
    x_low, x_high = axis_range(base, base_err)
    y_low, y_high = axis_range(new, new_err)

    fig, ax = plt.subplots(figsize=(9.5, 6.0), dpi=150)
    grid_x, grid_y = np.meshgrid(np.linspace(x_low, x_high, 300), np.linspace(y_low, y_high, 300))
    with np.errstate(invalid="ignore", divide="ignore"):
        grid_hm = np.where(grid_x + grid_y > 0, 2 * grid_x * grid_y / (grid_x + grid_y), 0.0)
    levels = hm_levels(float(grid_hm.min()), float(grid_hm.max()))
    if levels:
        contours = ax.contour(grid_x, grid_y, grid_hm, levels=levels, colors="0.65", linewidths=0.8, zorder=1)
        ax.clabel(contours, fmt=lambda value: f"HM {value:g}", fontsize=8, inline=True)
    diagonal = [max(x_low, y_low), min(x_high, y_high)]
    if diagonal[0] < diagonal[1]:
        ax.plot(diagonal, diagonal, linestyle=":", color="0.6", linewidth=0.8, zorder=1, label="Base = New")

    # Error bars at the true means; the markers over them, with a dark outline, nudged apart where two
    # would overlap (their bars' crossing still shows the true point).
    markers = []
    for row, label, (marker, colour) in zip(points, point_labels(points, names), point_styles(points, names)):
        ax.errorbar(row.base_mean, row.new_mean, xerr=row.base_spread or None, yerr=row.new_spread or None,
                    fmt="none", ecolor=colour, elinewidth=1.0, capsize=3, zorder=2)
        markers += ax.plot([row.base_mean], [row.new_mean], linestyle="none", marker=marker, color=colour,
                           markersize=MARKER_SIZE, markeredgecolor="black", markeredgewidth=0.7, label=label,
                           zorder=3)

    ax.set_xlim(x_low, x_high)
    ax.set_ylim(y_low, y_high)
    ax.set_xlabel(f"Base {metric} (%)")
    ax.set_ylabel(f"New {metric} (%)")
    ax.set_title(f"Base vs. new classes, {description}, {seeds_text(points)}\n"
                 f"error bars: {spread_name} over seeds; grey: iso-HM curves; overlapping markers nudged apart",
                 fontsize=10)
    ax.grid(True, linewidth=0.3, alpha=0.5)
    # outside the axes, right: it can cover neither a point nor an iso-HM label
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8, framealpha=0.9)
    fig.tight_layout()
    to_points = 72.0 / fig.dpi
    positions = [tuple(xy * to_points) for xy in ax.transData.transform([(r.base_mean, r.new_mean) for r in points])]
    for line, (dx, dy) in zip(markers, marker_offsets(positions)):
        if dx or dy:
            line.set_transform(offset_copy(ax.transData, fig=fig, x=dx, y=dy, units="points"))
    return fig


def plot(points: list[Base2NewRow], description: str, metric: str, spread_name: str, out: Path,
         names: dict[tuple[str, str], str] | None = None) -> None:
    import matplotlib.pyplot as plt

    fig = figure(points, description, metric, spread_name, names)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Plot Base against New accuracy with iso-HM curves.")
    parser.add_argument("root", help="base-to-new output folder (holding train_base/ and test_new/)")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument(
        "--metric",
        default=DEFAULT_METRIC,
        help="accuracy (default), macro_f1 or e.g. variants.soft_only.accuracy",
    )
    parser.add_argument("--dataset", default=None, help="plot only this dataset (Dassl name, e.g. OxfordPets)")
    parser.add_argument("--ci95", action="store_true", help="error bars: 95%% Student-t interval of the mean instead of the sample std")
    parser.add_argument("--strict", action="store_true", help="fail on a malformed results.json instead of skipping it")
    parser.add_argument("--label", action="append", default=[], metavar="TRAINER/CONFIG=NAME",
                        help="name a point (repeatable); 'CoOp + ensemble' is built in for DualPromptMI *_ensemble_only")
    return parser


def parse_labels(items: list[str]) -> dict[tuple[str, str], str]:
    names = {}
    for item in items:
        key, sep, name = item.partition("=")
        trainer, slash, config = key.partition("/")
        if not (sep and slash and trainer and config and name):
            raise UserError(f"--label {item!r}: write TRAINER/CONFIG=NAME")
        names[(trainer, config)] = name
    return names


def run(args: argparse.Namespace) -> int:
    names = parse_labels(args.label)
    loaded = load_results(args.root, strict=args.strict)
    runs = loaded.runs
    if args.dataset is not None:
        names = sorted({run.dataset for run in runs})
        runs = [run for run in runs if run.dataset == args.dataset]
        if not runs:
            raise UserError(f"--dataset {args.dataset}: not among the results under {args.root} ({', '.join(names)})")
    table = base_to_new_table(runs, args.metric, ci95=args.ci95)
    points, description = points_to_plot(table.rows, table.averages)
    if not points:
        raise UserError(f"no (dataset, trainer) under {args.root} has both train_base and test_new results to plot")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: give a .png file name")
    plot(points, description, table.metric, table.spread_name, out, names)
    for warning in loaded.warnings + table.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return exit_status(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
