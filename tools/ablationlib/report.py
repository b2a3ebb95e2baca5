"""The ablation tables: printed, and written to ``<out>/<stem>.{md,csv,json}``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from clipprompt.results import format_mean_spread
from clipprompt.results.paired import format_difference
from clipprompt.runtime.files import write_json_atomic, write_text_atomic
from tools.ablationlib.aggregate import HALVES, METRICS, MetricTable, Selection, VariantResult, aggregate, select_best
from tools.ablationlib.plan import Plan, Settings, Variant
from tools.ablationlib.stages import Stage


def display_options(variant: Variant) -> str:
    prefix = f"TRAINER.{variant.trainer.upper()}."
    shown = " ".join(item[len(prefix):] if i % 2 == 0 and item.startswith(prefix) else item
                     for i, item in enumerate(variant.opts))
    return shown or "-"


def table_rows(table: MetricTable) -> tuple[list[str], list[list[str]]]:
    headers = ["Variant", "Trainer", "Config", "Options", "Seeds", "Base", "New", "HM", "ΔBase", "ΔNew", "ΔHM"]
    rows = []
    for result in table.results:
        name = result.variant.name
        row = [name, result.variant.trainer, result.variant.cfg, display_options(result.variant),
               ",".join(map(str, result.seeds)) or "-"]
        row += [format_mean_spread(*result.stats(half)) for half in HALVES]
        if name == table.reference:
            row += ["(reference)"] * 3
        else:
            diffs = table.differences.get(name)
            row += [format_difference(diffs[half]) if diffs else "-" for half in HALVES]
        rows.append(row)
    return headers, rows


def table_notes(table: MetricTable) -> list[str]:
    return [
        "Base, New, HM: mean ± sample std over the seeds with both halves; HM is each seed's 2BN/(B+N).",
        f"Δ: variant - {table.reference} over the seeds both have: mean [95% t-interval]; better/worse when the "
        "interval excludes 0, else unresolved.",
        *table.notes,
    ]


def to_markdown(tables: list[MetricTable], selection: Selection | None, title: str) -> str:
    from tabulate import tabulate

    lines = [f"# {title}", ""]
    for table in tables:
        headers, rows = table_rows(table)
        lines += [f"**{table.stage.description}; metric: {table.metric} (%)**", ""]
        lines += [tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), ""]
        lines += [f"- {note}" for note in table_notes(table)] + [""]
    if selection is not None:
        lines += [f"Selection: {selection.text}", ""]
    return "\n".join(lines)


def to_csv(tables: list[MetricTable]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["stage", "dataset", "metric", "variant", "trainer", "cfg", "opts", "num_seeds", "seeds"]
    header += [f"{half}_{stat}" for half in HALVES for stat in ("mean", "std")]
    header += [f"diff_{half}_{stat}" for half in HALVES for stat in ("mean", "std", "n", "ci_low", "ci_high", "verdict")]
    writer.writerow(header)

    def number(value):
        return "" if value is None else f"{value:.4f}"

    for table in tables:
        for result in table.results:
            row = [table.stage.name, table.stage.dataset, table.metric, result.variant.name, result.variant.trainer,
                   result.variant.cfg, " ".join(result.variant.opts), len(result.seeds),
                   " ".join(map(str, result.seeds))]
            for half in HALVES:
                row += [number(value) for value in result.stats(half)]
            diffs = table.differences.get(result.variant.name)
            for half in HALVES:
                if diffs is None:
                    row += [""] * 6
                else:
                    d = diffs[half]
                    row += [number(d.mean), number(d.std), d.n, number(d.ci_low), number(d.ci_high), d.verdict]
            writer.writerow(row)
    return buffer.getvalue()


def to_json(tables: list[MetricTable], selection: Selection | None, settings: Settings) -> dict:
    def variant_record(result: VariantResult) -> dict:
        record = {**result.variant.definition(), "note": result.variant.note, "seeds": list(result.seeds)}
        for half in HALVES:
            record[half] = {str(seed): result.values[half][seed] for seed in result.seeds}
            record[f"{half}_mean"], record[f"{half}_std"] = result.stats(half)
        record["incomplete"] = {str(seed): half for seed, half in result.incomplete.items()}
        return record

    return {
        "seeds": list(settings.seeds),
        "shots": settings.shots,
        "extra": list(settings.extra),
        "tables": [
            {
                "stage": table.stage.name,
                "dataset": table.stage.dataset,
                "description": table.stage.description,
                "metric": table.metric,
                "reference": table.reference,
                "variants": {r.variant.name: variant_record(r) for r in table.results},
                "differences": {name: {half: d.to_dict() for half, d in diffs.items()}
                                for name, diffs in table.differences.items()},
                "notes": table.notes,
            }
            for table in tables
        ],
        "selection": None if selection is None else {
            "by": selection.by, "best": selection.best, "mean": selection.mean, "text": selection.text,
            "versus_reference": None if selection.versus_reference is None else selection.versus_reference.to_dict(),
        },
    }


def report(plan: Plan, variants: list[Variant], stage: Stage, settings: Settings, select_by: str | None,
           title: str, stem: str) -> tuple[list[MetricTable], Selection | None]:
    """Aggregate, print and write ``<out>/<stem>.{md,csv,json}``."""
    tables = [t for t in (aggregate(plan, variants, stage, settings, metric) for metric in METRICS) if t is not None]
    if not tables:
        print(f"no results yet for the {stage.name} stage under {Path(settings.out) / stage.name}", flush=True)
        return [], None
    selection = select_best(tables[0], select_by) if select_by else None
    markdown = to_markdown(tables, selection, title)
    print(markdown, flush=True)
    prefix = Path(settings.out) / stem
    write_text_atomic(prefix.with_suffix(".md"), markdown)
    write_text_atomic(prefix.with_suffix(".csv"), to_csv(tables))
    write_json_atomic(prefix.with_suffix(".json"), to_json(tables, selection, settings), indent=2)
    print(f"wrote {prefix}.md, .csv and .json", flush=True)
    return tables, selection
