"""The Markdown table of paired per-seed comparisons that ``targets`` and ``ordering`` print.

One row per comparison: its label, the mean paired difference with its 95% t-interval and the number
of seeds (``clipprompt.results.paired.format_difference``), the per-seed differences
(``clipprompt.results.paired.format_seed_differences``) and a verdict the caller words.
"""

from __future__ import annotations

from collections.abc import Iterable

from clipprompt.results.paired import PairedDifference, format_difference, format_seed_differences


def paired_table(label_head: str, verdict_head: str, rows: Iterable[tuple[str, PairedDifference, str]]) -> list[str]:
    """The table's lines: a head ``| label_head | mean paired difference [95% interval] | per seed |
    verdict_head |``, then one line per ``(label, difference, verdict)`` of ``rows``."""
    lines = [f"| {label_head} | mean paired difference [95% interval] | per seed | {verdict_head} |",
             "|---|---|---|---|"]
    for label, diff, verdict in rows:
        lines.append(f"| {label} | {format_difference(diff, verdict=False, with_n=True)} | "
                     f"{format_seed_differences(diff)} | {verdict} |")
    return lines
