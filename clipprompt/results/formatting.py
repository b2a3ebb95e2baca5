"""What a cell of a table shows: the spread over seeds (:func:`spread`) and the text of numbers.

**Spread** (``±``) is the *sample* standard deviation over seeds (``ddof=1``, as
:func:`clipprompt.results.paired.mean_and_std`); with ``ci95=True`` it is the half-width of the 95%
Student-t interval of the mean, ``t(0.975, n-1) * std / sqrt(n)``
(:func:`clipprompt.results.paired.t_half_width`), the interval the paired comparisons use. One seed
has no spread (shown as the mean alone).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from clipprompt.results.paired import mean_and_std, t_half_width


def spread(values: Sequence[float], ci95: bool = False) -> float | None:
    """Sample std (ddof=1) over seeds, or with ``ci95`` the half-width of the 95% t-interval of the
    mean; None for a single value."""
    if not values:
        raise ValueError("spread of no values")
    _, std = mean_and_std(values)
    if std is None:
        return None
    return t_half_width(std, len(values)) if ci95 else std


def spread_caption(ci95: bool) -> str:
    """What ``±`` means in a table, for its title."""
    return "mean ± 95% t-interval over seeds" if ci95 else "mean ± sample std over seeds"


def spread_note(ci95: bool) -> str:
    """The same, spelled out, for a table's notes."""
    if ci95:
        return ("± = half-width of the 95% Student-t interval of the mean over seeds, "
                "t(0.975, n-1) * sample std / sqrt(n); one seed has no ±.")
    return "± = sample standard deviation over seeds (ddof=1); one seed has no ±."


def spread_column(ci95: bool) -> str:
    """The CSV column suffix of the spread: ``sample_std`` or ``ci95_t``."""
    return "ci95_t" if ci95 else "sample_std"


def format_mean_spread(mean: float | None, spread_value: float | None, digits: int = 2) -> str:
    """``82.69 ± 0.55``; just the mean without a spread; ``-`` without a mean."""
    if mean is None:
        return "-"
    if spread_value is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {spread_value:.{digits}f}"


def format_number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def csv_number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def format_seeds(seeds: Iterable[int]) -> str:
    return ",".join(str(seed) for seed in sorted(seeds))


def shots_text(shots: int | None, missing: str) -> str:
    return missing if shots is None else str(shots)


def describe_method(dataset: str, trainer: str, config: str, shots: int | None) -> str:
    shots_part = "" if shots is None else f" / {shots} shots"
    return f"{dataset} / {trainer} / {config}{shots_part}"
