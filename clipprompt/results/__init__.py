"""Collect the ``results.json`` files of many runs into the tables papers report.

Every evaluation writes one ``results.json`` into its output folder; this
package finds them under a root, groups them by (dataset, trainer, config,
shots) and averages over seeds. It needs neither Dassl nor torch, so it runs
on a laptop next to a copy of the output tree. By concern:

* :mod:`clipprompt.results.records`: the results.json schema, its writer
  (called by the trainers) and its readers, metric selection, and the per-seed
  values per (trainer, config) that the paired checks read;
* :mod:`clipprompt.results.paired`: statistics over seeds: harmonic mean,
  mean and sample std, the 95% t-interval, paired per-seed differences;
* :mod:`clipprompt.results.order`: the row order of the tables (datasets,
  trainers);
* :mod:`clipprompt.results.formatting`: the spread over seeds (sample std or
  95% t-interval) and the text of numbers;
* :mod:`clipprompt.results.common`: what both tables share (dataset label,
  Average over datasets, captions);
* :mod:`clipprompt.results.base2new`: the Base/New/HM table;
* :mod:`clipprompt.results.published`: the published numbers of the bundled
  trainers, with their sources (plain data);
* :mod:`clipprompt.results.base2new_published`: the Base/New/HM table with the
  published numbers and ours minus published beside each row;
* :mod:`clipprompt.results.summary`: the summary table (mean ± spread over
  seeds of the other runs);
* :mod:`clipprompt.results.report`: both tables from one root (``summarize``);
* :mod:`clipprompt.results.export`: printed text, CSV and Markdown files.

``from clipprompt.results import X`` works for every public name of the
records, the tables, the report and the export.
"""

from clipprompt.results.base2new import Base2NewRow, Base2NewTable, base_to_new_table, csv_headers_base2new
from clipprompt.results.base2new_published import (
    Base2NewPublishedTable,
    csv_headers_base2new_published,
    published_rows,
    with_published,
)
from clipprompt.results.export import (
    GENERATED_MARKER,
    default_out_prefix,
    format_table,
    is_generated_file,
    output_paths,
    table_to_csv,
    table_to_markdown,
    write_table_files,
)
from clipprompt.results.formatting import format_mean_spread, spread, spread_caption, spread_column
from clipprompt.results.order import AVERAGE_LABEL, PAPER_DATASET_ORDER, TRAINER_ORDER
from clipprompt.results.paired import harmonic_mean
from clipprompt.results.records import (
    BASE_HALF_FOLDER,
    DEFAULT_METRIC,
    EVALUATION_FOLDER,
    NEW_HALF_FOLDER,
    REQUIRED_KEYS,
    RESULTS_FILENAME,
    SCHEMA_VERSION,
    LoadedResults,
    RunResult,
    available_metrics,
    check_metric_name,
    drop_duplicates,
    find_result_files,
    is_base_to_new,
    load_result_file,
    load_results,
    per_config_values,
    results_filename,
    run_record,
    select_metric,
    write_run_results,
)
from clipprompt.results.report import ResultsReport, summarize
from clipprompt.results.summary import SummaryRow, SummaryTable, csv_headers_summary, summary_table

__all__ = [
    "AVERAGE_LABEL",
    "BASE_HALF_FOLDER",
    "DEFAULT_METRIC",
    "EVALUATION_FOLDER",
    "GENERATED_MARKER",
    "NEW_HALF_FOLDER",
    "PAPER_DATASET_ORDER",
    "REQUIRED_KEYS",
    "RESULTS_FILENAME",
    "SCHEMA_VERSION",
    "TRAINER_ORDER",
    "Base2NewPublishedTable",
    "Base2NewRow",
    "Base2NewTable",
    "LoadedResults",
    "ResultsReport",
    "RunResult",
    "SummaryRow",
    "SummaryTable",
    "available_metrics",
    "base_to_new_table",
    "check_metric_name",
    "csv_headers_base2new",
    "csv_headers_base2new_published",
    "csv_headers_summary",
    "default_out_prefix",
    "drop_duplicates",
    "find_result_files",
    "format_mean_spread",
    "format_table",
    "harmonic_mean",
    "is_base_to_new",
    "is_generated_file",
    "load_result_file",
    "load_results",
    "output_paths",
    "per_config_values",
    "published_rows",
    "results_filename",
    "run_record",
    "select_metric",
    "spread",
    "spread_caption",
    "spread_column",
    "summarize",
    "summary_table",
    "table_to_csv",
    "table_to_markdown",
    "with_published",
    "write_run_results",
    "write_table_files",
]
