"""Scatter Base (x) against New (y) accuracy per trainer, over iso-HM curves.

    python tools/plot_base_new.py output/base2new --out base_new.png
    python tools/plot_base_new.py output/base2new --dataset EuroSAT --out eurosat.png

Uses the same aggregation as parse_test_res.py (clipprompt.results): one point
per (trainer, config, shots), averaged over datasets (the table's Average
rows), or that dataset's rows when the tree (or --dataset) holds a single
dataset. Error bars are the spread over seeds (the sample std, or with
--ci95 the 95% Student-t interval of the mean). The grey curves are points of equal harmonic mean
HM = 2BN/(B+N), so a point further up-right on them has a better trade-off.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's clipprompt first
from clipprompt.errors import UserError, exit_status  # noqa: E402
from clipprompt.results import DEFAULT_METRIC, Base2NewRow, base_to_new_table, load_results  # noqa: E402

# 11 markers against the colour map's 10 colours: (marker, colour) pairs repeat only after 110 points
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h")
COLOUR_MAP, N_COLOURS = "tab10", 10
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
# hand-crafted inference ensemble; its ``*_ivlp`` / ``*_maple`` configs run over those prompt learners.
READABLE_NAMES = (
    ("DualPromptMI", "_ensemble_only", "CoOp + ensemble"),
    ("DualPromptMI", "_ivlp", "DualPromptMI (IVLP)"),
    ("DualPromptMI", "_maple", "DualPromptMI (MaPLe)"),
)


def readable_name(trainer: str, config: str, names: dict[tuple[str, str], str] | None = None) -> str | None:
    """The reader's name for a (trainer, config): ``names`` (from --label) first, then READABLE_NAMES."""
    if names and (trainer, config) in names:
        return names[(trainer, config)]
    for rule_trainer, suffix, name in READABLE_NAMES:
        if trainer == rule_trainer and config.endswith(suffix):
            return name
    return None


def point_style(index: int) -> tuple[str, int]:
    """The (marker, COLOUR_MAP colour index) of the index-th point; no two of the first 110 points share both."""
    return MARKERS[index % len(MARKERS)], index % N_COLOURS


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


def plot(points: list[Base2NewRow], description: str, metric: str, spread_name: str, out: Path,
         names: dict[tuple[str, str], str] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    base = [row.base_mean for row in points]
    new = [row.new_mean for row in points]
    base_err = [row.base_spread or 0.0 for row in points]
    new_err = [row.new_spread or 0.0 for row in points]
    x_low, x_high = axis_range(base, base_err)
    y_low, y_high = axis_range(new, new_err)

    fig, ax = plt.subplots(figsize=(7.0, 6.0), dpi=150)
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

    colours = plt.get_cmap(COLOUR_MAP)
    for index, (row, label) in enumerate(zip(points, point_labels(points, names))):
        marker, colour = point_style(index)
        ax.errorbar(
            row.base_mean,
            row.new_mean,
            xerr=row.base_spread or None,
            yerr=row.new_spread or None,
            fmt=marker,
            color=colours(colour),
            markersize=8,
            capsize=3,
            label=label,
            zorder=3,
        )

    ax.set_xlim(x_low, x_high)
    ax.set_ylim(y_low, y_high)
    ax.set_xlabel(f"Base {metric} (%)")
    ax.set_ylabel(f"New {metric} (%)")
    ax.set_title(f"Base vs. new classes, {description}\nerror bars: {spread_name} over seeds; grey: iso-HM curves")
    ax.grid(True, linewidth=0.3, alpha=0.5)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    fig.tight_layout()
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
