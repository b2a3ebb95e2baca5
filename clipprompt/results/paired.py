"""Paired per-seed statistics for ablations (plain Python; scipy is used when installed).

Accuracy on new classes moves by a few points from one seed to the next, so
two variants are compared seed by seed: both are trained on the same few-shot
samples (the sampler is seeded by the run's seed), and the difference
``candidate - reference`` of each seed cancels most of that noise.

Conventions:

* ``std`` is the *sample* standard deviation (``ddof=1``), the one the
  t-interval needs; it is None for fewer than two values.
* The interval is the two-sided 95% Student-t interval of the mean paired
  difference, ``mean ± t(0.975, n-1) * std / sqrt(n)``.
* Verdict: ``better`` when the whole interval lies above 0, ``worse`` when it
  lies below 0, otherwise ``unresolved`` (also with fewer than two seeds).
  Higher values are better (accuracies, harmonic means).
* HM per seed is ``2*B*N/(B+N)`` of that seed's Base and New, so that HM
  differences can be paired like Base and New.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

BETTER = "better"
WORSE = "worse"
UNRESOLVED = "unresolved"

# t quantile (0.975, two-sided 95%) for 1..30 degrees of freedom, used when scipy is absent.
T_975_TABLE = (
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
    2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
    2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
)
_Z_975 = 1.959963984540054


def t_quantile_975_fallback(df: int) -> float:
    """The 0.975 t quantile without scipy: the table up to 30 degrees of freedom,
    beyond it the Cornish-Fisher expansion around the normal quantile (error < 1e-4)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(T_975_TABLE):
        return T_975_TABLE[df - 1]
    z = _Z_975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    try:
        from scipy.stats import t
    except ImportError:
        return t_quantile_975_fallback(df)
    return float(t.ppf(0.975, df))


def t_half_width(std: float, n: int) -> float:
    """Half-width of the two-sided 95% Student-t interval of a mean of ``n`` values with sample std ``std``:
    ``t(0.975, n-1) * std / sqrt(n)``."""
    if n < 2:
        raise ValueError(f"a t-interval needs at least 2 values, got {n}")
    return t_quantile_975(n - 1) * std / math.sqrt(n)


def harmonic_mean(base: float, new: float) -> float:
    """HM = 2*B*N / (B+N); 0 when both are 0."""
    if base + new == 0:
        return 0.0
    return 2.0 * base * new / (base + new)


def mean_and_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof=1); None for what the values cannot give."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


@dataclass(frozen=True)
class PairedDifference:
    """``candidate - reference`` over the seeds both have."""

    seeds: tuple[int, ...]
    differences: tuple[float, ...]  # one per seed, in the order of ``seeds``
    mean: float | None
    std: float | None
    sem: float | None  # standard error of the mean: std / sqrt(n)
    ci_low: float | None
    ci_high: float | None
    verdict: str

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def resolved(self) -> bool:
        return self.verdict != UNRESOLVED

    def to_dict(self) -> dict:
        record = asdict(self)
        record["n"] = self.n
        return record


def paired_difference(reference: Mapping[int, float], candidate: Mapping[int, float]) -> PairedDifference:
    """Paired differences ``candidate[s] - reference[s]`` over the common seeds ``s``."""
    seeds = tuple(sorted(set(reference) & set(candidate)))
    differences = tuple(float(candidate[seed]) - float(reference[seed]) for seed in seeds)
    mean, std = mean_and_std(differences)
    if std is None:
        return PairedDifference(seeds, differences, mean, None, None, None, None, UNRESOLVED)
    sem = std / math.sqrt(len(differences))
    half_width = t_half_width(std, len(differences))
    low, high = mean - half_width, mean + half_width
    verdict = BETTER if low > 0 else WORSE if high < 0 else UNRESOLVED
    return PairedDifference(seeds, differences, mean, std, sem, low, high, verdict)


def per_seed_harmonic_mean(base: Mapping[int, float], new: Mapping[int, float]) -> dict[int, float]:
    """``{seed: HM(base[seed], new[seed])}`` for the seeds that have both halves."""
    return {seed: harmonic_mean(base[seed], new[seed]) for seed in sorted(set(base) & set(new))}


def seed_halves(base: Mapping[int, float], new: Mapping[int, float]) -> dict[str, dict[int, float]]:
    """``{"base": {seed: value}, "new": {...}, "hm": {...}}``, the per-seed record every paired check reads."""
    return {"base": dict(base), "new": dict(new), "hm": per_seed_harmonic_mean(base, new)}


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def format_difference(diff: PairedDifference, verdict: bool = True, with_n: bool = False) -> str:
    """``+1.20 [+0.35, +2.05] better`` (without ``verdict``: no last word; ``with_n``: ``(n=3)`` after the
    interval); ``+1.20 (n=1)`` without an interval; ``-`` without seeds."""
    if diff.mean is None:
        return "-"
    if diff.ci_low is None:
        return f"{_signed(diff.mean)} (n={diff.n})"
    text = f"{_signed(diff.mean)} [{_signed(diff.ci_low)}, {_signed(diff.ci_high)}]"
    if with_n:
        text += f" (n={diff.n})"
    return f"{text} {diff.verdict}" if verdict else text


def format_seed_differences(diff: PairedDifference) -> str:
    """``1: +0.20, 2: -1.10``: each seed's difference."""
    return ", ".join(f"{seed}: {_signed(value)}" for seed, value in zip(diff.seeds, diff.differences))
