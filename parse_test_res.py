"""Summarize test results over seeds, like CoOp's parse_test_res.py, from results.json files.

Every evaluation writes a results.json into its output folder. Point this
script at the top of an output tree:

    python parse_test_res.py output/base2new

If the tree has train_base/ and test_new/ folders (CoOp's base-to-new layout)
it prints the base-to-new table (Base, New, HM per dataset and the Average
over datasets); any other runs (all-class few-shot, cross-dataset and
domain-generalisation evaluations) go into a summary table. Every cell is the
mean ± the sample std over seeds (ddof=1), as each table's caption says. Both
are also written as CSV and Markdown, by default to <root>/results_base2new.*
and <root>/results_summary.*.

Options:
    --metric accuracy | macro_f1 | variants.soft_only.accuracy   (default accuracy)
    --ci95           ± is the half-width of the 95% Student-t interval of the mean,
                     t(0.975, n-1) * sample std / sqrt(n), instead of the sample std
    --published      add to the base-to-new table the published Base / New / HM of each
                     bundled trainer (CLIP ViT-B/16, 16 shots) and ours minus published,
                     written to <prefix>_base2new_published.* (clipprompt/results/published.py
                     holds the numbers and their sources)
    --out-prefix P   write P_base2new.csv/.md (and P_summary.*) instead
    --no-save        print only
    --strict         stop at the first malformed results.json instead of skipping it
    --force          overwrite output files even if this script did not write them
    -v, --verbose    also list every results.json with its value
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clipprompt.errors import exit_status
from clipprompt.results import (
    DEFAULT_METRIC,
    default_out_prefix,
    format_table,
    summarize,
    with_published,
    write_table_files,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Mean and sample std over seeds of the results.json files under an output folder; "
        "Base/New/HM table for the base-to-new layout (train_base/, test_new/)."
    )
    parser.add_argument("root", help="output folder to search for results.json files (e.g. output/base2new)")
    parser.add_argument(
        "--metric",
        "--keyword",  # CoOp's script calls it --keyword
        dest="metric",
        default=DEFAULT_METRIC,
        help="field to report: accuracy (default), macro_f1, or a dotted path such as variants.soft_only.accuracy",
    )
    parser.add_argument("--ci95", action="store_true", help="report the 95%% Student-t interval of the mean instead of the sample std")
    parser.add_argument(
        "--out-prefix",
        default=None,
        help="prefix of the CSV/Markdown files (default: <root>/results, giving <root>/results_base2new.csv ...)",
    )
    parser.add_argument(
        "--published",
        action="store_true",
        help="add the published Base/New/HM (CLIP ViT-B/16, 16 shots) and ours minus published to the "
        "base-to-new table, written to <prefix>_base2new_published.csv/.md",
    )
    parser.add_argument("--no-save", action="store_true", help="print the tables without writing files")
    parser.add_argument("--strict", action="store_true", help="fail on a malformed results.json instead of skipping it")
    parser.add_argument("--force", action="store_true", help="overwrite output files this script did not write")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every results.json and its value")
    return parser


def run(args: argparse.Namespace) -> int:
    report = summarize(args.root, args.metric, ci95=args.ci95, strict=args.strict)
    root = Path(args.root)
    if args.verbose:
        for run_result in report.loaded.runs:
            value = run_result.value(args.metric)
            shown = "-" if value is None else f"{value:.2f}%"
            print(f"{run_result.path}: {args.metric} {shown}")
        print()

    tables = report.tables
    warnings = report.warnings
    if args.published:
        if report.base2new is None:
            warnings.append("--published: no base-to-new results here, and no published numbers for other protocols")
        else:
            published = with_published(report.base2new)
            tables = [published if table is report.base2new else table for table in tables]
            warnings += published.published_warnings

    prefix = Path(args.out_prefix) if args.out_prefix else default_out_prefix(root)
    for table in tables:
        print(table.title())
        print(format_table(table))
        print()
    for table in tables:
        if not args.no_save:
            csv_path, md_path = write_table_files(table, prefix, overwrite=args.force, source=root)
            print(f"wrote {csv_path} and {md_path}")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return exit_status(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
