"""Which CPU benchmark a base-to-new results folder holds, read from its Dassl dataset name.

Each benchmark claims something different (docs/cpu_benchmarks.md): fashion10 is a smoke test
whose DualPromptMI target is "not below the best trainer", fashion_colours the ranking benchmark
whose target is "above every trainer, resolved". targets.py and ordering.py judge by the claim of
the benchmark the results come from, so both read it here.
"""

from __future__ import annotations

from clipprompt.errors import UserError

BENCHMARKS = ("fashion10", "fashion_colours")
BENCHMARK_OF_DATASET = {"FashionMNIST": "fashion10", "FashionColours": "fashion_colours"}


def benchmark_of(runs, dataset: str | None = None, given: str | None = None) -> str | None:
    """``given`` (a --benchmark flag) if set, else the benchmark of the runs' dataset (``dataset`` when
    the runs hold several), else None (not a CPU benchmark's results)."""
    if given is not None:
        if given not in BENCHMARKS:
            raise UserError(f"--benchmark {given}: choose {' or '.join(BENCHMARKS)}")
        return given
    datasets = {run.dataset for run in runs if run.half in ("base", "new")}
    if dataset is not None:
        datasets &= {dataset}
    found = {BENCHMARK_OF_DATASET.get(name) for name in datasets}
    return found.pop() if len(found) == 1 else None
