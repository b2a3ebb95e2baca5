"""Collect the ``results.json`` files of many runs into the tables papers report.

Every evaluation writes one ``results.json`` into its output folder; this
package finds them under a root, groups them by (dataset, trainer, config,
shots) and averages over seeds. It needs neither Dassl nor torch, so it runs
on a laptop next to a copy of the output tree. By concern:

* :mod:`clipprompt.results.records`: the results.json schema, its writer
  (called by the trainers) and its readers, metric selection, and the per-seed
  values per (trainer, config) that the paired checks read;
* :mod:`clipprompt.results.tables`: the Base/New/HM table and the summary
  table (mean ± sample std over seeds, or the 95% t-interval);
* :mod:`clipprompt.results.export`: printed text, CSV and Markdown files.

``from clipprompt.results import X`` works for every public name of the three.
"""

from clipprompt.results.paired import harmonic_mean
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
from clipprompt.results.tables import (
    AVERAGE_LABEL,
    PAPER_DATASET_ORDER,
    TRAINER_ORDER,
    Base2NewRow,
    Base2NewTable,
    ResultsReport,
    SummaryRow,
    SummaryTable,
    base_to_new_table,
    csv_headers_base2new,
    csv_headers_summary,
    format_mean_spread,
    spread,
    spread_caption,
    spread_column,
    summarize,
    summary_table,
)

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
    "write_run_results",
    "write_table_files",
]
