"""The ``results.json`` record: writing it after an evaluation, finding and loading it, picking a metric.

The writer (:func:`write_run_results`, called by ``trainers/base.py``) and the
readers sit side by side so that the schema has one home. Needs neither Dassl
nor torch.

Schema (one JSON object per evaluation, in the run's output folder):

* ``schema_version`` (int, :data:`SCHEMA_VERSION`; absent in files written before it)
* ``trainer``, ``dataset`` (Dassl names), ``split`` (``test`` or ``val``),
  ``subsample`` (``all``, ``base`` or ``new``), ``seed``, ``shots``,
  ``config`` (stem of the config file), ``backbone`` (name or path)
* ``accuracy``, ``macro_f1`` (percent), ``num_samples`` (images evaluated),
  ``epoch`` (completed epochs of the weights evaluated; null for zero-shot)
* ``variants``: ``{name: {"accuracy", "macro_f1"}}``, the other predictions a
  trainer reports (DualPromptMI: ``soft_only``, ``hand_only``)
* ``output_dir``, ``timestamp`` (local time, ISO 8601 to the second)

Only ``trainer``, ``dataset`` and ``seed`` are required to read a file;
``shots`` falls back to a ``shots_N`` folder, the base/new half to the
``train_base``/``test_new`` folder. A test split is ``results.json``, any
other split ``results_<split>.json``, which the tables do not collect.

Malformed files (invalid JSON, not an object, a required key missing, a newer
schema) are skipped with a warning that names the file, so a run that is
still writing does not block a look at the others; ``strict=True`` turns each
of them into a :class:`~clipprompt.errors.UserError` instead.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from clipprompt.errors import UserError
from clipprompt.results.paired import seed_halves
from clipprompt.runtime.files import write_json_atomic

SCHEMA_VERSION = 1
RESULTS_FILENAME = "results.json"
BASE_HALF_FOLDER = "train_base"
NEW_HALF_FOLDER = "test_new"
EVALUATION_FOLDER = "evaluation"
REQUIRED_KEYS = ("trainer", "dataset", "seed")
DEFAULT_METRIC = "accuracy"

# Numeric fields of results.json that describe a run rather than measure it.
_NON_METRIC_FIELDS = frozenset({"schema_version", "seed", "shots", "epoch", "num_samples"})


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def results_filename(split: str) -> str:
    """``results.json`` for the test split, ``results_<split>.json`` for another."""
    return RESULTS_FILENAME if split == "test" else f"results_{split}.json"


def run_record(
    *,
    trainer: str,
    dataset: str,
    split: str,
    subsample: str,
    seed: int,
    shots: int,
    config: str,
    backbone: str,
    accuracy: float,
    macro_f1: float,
    num_samples: int,
    epoch: int | None,
    output_dir: str,
    variants: Mapping[str, Mapping[str, float]],
    timestamp: str | None = None,
) -> dict:
    """The results.json object of one evaluation (see the schema in this module's docstring)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "trainer": trainer,
        "dataset": dataset,
        "split": split,
        "subsample": subsample,
        "seed": seed,
        "shots": shots,
        "config": config,
        "backbone": backbone,
        "accuracy": float(accuracy),
        "macro_f1": float(macro_f1),
        "num_samples": num_samples,
        "epoch": epoch,
        "output_dir": output_dir,
        "variants": {name: {key: float(value) for key, value in scores.items()} for name, scores in variants.items()},
        "timestamp": timestamp or datetime.datetime.now().isoformat(timespec="seconds"),
    }


def write_run_results(output_dir: str | os.PathLike, record: dict) -> Path:
    """Write ``record`` (from :func:`run_record`) atomically into ``output_dir``; returns the path."""
    path = Path(output_dir) / results_filename(record["split"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, record, indent=2)
    return path


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """One results.json: the parsed record plus the fields used to group it."""

    path: Path
    record: dict
    trainer: str
    dataset: str
    config: str
    shots: int | None
    seed: int
    subsample: str
    half: str | None  # "base" or "new" for a base-to-new run, else None
    folder_half: str | None  # what the train_base/test_new folder alone would say
    protocol: str  # "base2new", "evaluation" (eval-only on other data) or "few-shot"

    def value(self, metric: str) -> float | None:
        """The number at ``metric`` (``accuracy`` or a dotted path), None if absent."""
        node = self.record
        for key in metric.split("."):
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        if node is None:
            return None
        if isinstance(node, bool) or not isinstance(node, (int, float)):
            raise UserError(f"metric {metric!r} in {self.path} is not a number: {node!r}")
        return float(node)

    @property
    def timestamp(self) -> str:
        return str(self.record.get("timestamp") or "")


@dataclass
class LoadedResults:
    """What :func:`load_results` found: the runs, and the files it skipped (as warnings)."""

    root: Path
    runs: list[RunResult]
    warnings: list[str] = field(default_factory=list)


def find_result_files(root: str | os.PathLike) -> list[Path]:
    """All ``results.json`` files under ``root``, in a stable (sorted) order."""
    root_path = Path(root)
    if not root_path.exists():
        raise UserError(f"results root not found: {root_path}")
    if not root_path.is_dir():
        raise UserError(f"results root is not a directory: {root_path}")
    found = []
    for folder, _subfolders, files in os.walk(root_path, followlinks=True):
        if RESULTS_FILENAME in files:
            found.append(Path(folder) / RESULTS_FILENAME)
    return sorted(found)


def _parse_int(value, what: str, path: Path) -> int:
    try:
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError
        return int(float(value))
    except (TypeError, ValueError):
        raise UserError(f"{what} in {path} is not an integer: {value!r}") from None


def _number_after(prefix: str, parts: Sequence[str]) -> int | None:
    """The N of the last folder named ``<prefix>N`` (``seed3``, ``shots_16``), if any."""
    for part in reversed(parts):
        if part.startswith(prefix) and part[len(prefix):].isdigit():
            return int(part[len(prefix):])
    return None


_FOLDER_HALVES = {BASE_HALF_FOLDER: "base", NEW_HALF_FOLDER: "new"}


def _folders_of(path: Path, root: str | os.PathLike | None) -> tuple[str, ...]:
    """The folder names from ``root`` (itself included) down to ``path``'s folder.

    Without a root, all folders of the absolute path. Lexical (no symlink
    resolution), so a root that links elsewhere still works.
    """
    if root is None:
        return path.resolve().parts[:-1]
    relative = Path(os.path.relpath(path, root))
    if relative.parts and relative.parts[0] == os.pardir:  # path not under root
        return path.resolve().parts[:-1]
    return (Path(root).resolve().name,) + relative.parts[:-1]


def load_result_file(path: str | os.PathLike, root: str | os.PathLike | None = None) -> RunResult:
    """Parse one results.json; raises UserError naming the file if it is malformed.

    ``root`` only matters for telling protocols apart: the folders between
    ``root``'s parent and the file decide whether a run lies under
    ``train_base``/``test_new`` or ``evaluation``.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except json.JSONDecodeError as exc:
        raise UserError(f"malformed JSON in {path}: {exc.msg} (line {exc.lineno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if not isinstance(record, dict):
        raise UserError(f"{path} does not hold a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise UserError(f"{path} lacks the key(s) {', '.join(missing)}")
    version = record.get("schema_version", SCHEMA_VERSION)
    if _parse_int(version, "schema_version", path) > SCHEMA_VERSION:
        raise UserError(
            f"{path} has schema_version {version}, newer than this checkout reads ({SCHEMA_VERSION}); update it"
        )

    parts = _folders_of(path, root)

    shots = record.get("shots")
    if shots is None:
        shots = _number_after("shots_", parts)
    else:
        shots = _parse_int(shots, "shots", path)
    seed = _parse_int(record["seed"], "seed", path)
    config = str(record.get("config") or "-")
    subsample = str(record.get("subsample") or "")

    folder_half = None
    for part in parts:
        folder_half = _FOLDER_HALVES.get(part, folder_half)
    # The subsample field says what was evaluated; the folder is a naming convention.
    half = subsample if subsample in ("base", "new") else (None if subsample else folder_half)

    if half is not None:
        protocol = "base2new"
    elif EVALUATION_FOLDER in parts:
        protocol = "evaluation"
    else:
        protocol = "few-shot"
    return RunResult(
        path=path,
        record=record,
        trainer=str(record["trainer"]),
        dataset=str(record["dataset"]),
        config=config,
        shots=shots,
        seed=seed,
        subsample=subsample,
        half=half,
        folder_half=folder_half,
        protocol=protocol,
    )


def _folder_half_conflict(run: RunResult) -> str | None:
    """A warning when a run's subsample field contradicts its train_base/test_new folder."""
    if run.folder_half is not None and run.subsample and run.subsample != run.folder_half:
        folder = BASE_HALF_FOLDER if run.folder_half == "base" else NEW_HALF_FOLDER
        counted = f"the {run.half} half" if run.half else "not base-to-new"
        return f"{run.path} lies under {folder}/ but says subsample={run.subsample!r}; counted as {counted}"
    return None


def load_results(root: str | os.PathLike, *, strict: bool = False) -> LoadedResults:
    """Load every results.json under ``root``.

    A malformed file is skipped with a warning (``strict=False``) or raises
    :class:`UserError` naming it (``strict=True``). A root with no
    results.json at all always raises.
    """
    root_path = Path(root)
    files = find_result_files(root_path)
    if not files:
        raise UserError(
            f"no {RESULTS_FILENAME} found under {root_path} (expected e.g. "
            f"{root_path}/{BASE_HALF_FOLDER}/<dataset>/shots_16/<Trainer>/<cfg>/seed1/{RESULTS_FILENAME})"
        )
    loaded = LoadedResults(root=root_path, runs=[])
    for path in files:
        try:
            run = load_result_file(path, root_path)
        except UserError as exc:
            if strict:
                raise
            loaded.warnings.append(f"skipped: {exc}")
            continue
        conflict = _folder_half_conflict(run)
        if conflict:
            loaded.warnings.append(conflict)
        loaded.runs.append(run)
    if not loaded.runs:
        raise UserError(
            f"none of the {len(files)} {RESULTS_FILENAME} files under {root_path} could be read; "
            f"first problem: {loaded.warnings[0]}"
        )
    return loaded


def is_base_to_new(runs: Iterable[RunResult]) -> bool:
    """True when any run is a base or new half (by subsample field or folder)."""
    return any(run.half is not None for run in runs)


# --------------------------------------------------------------------------
# Metric selection and duplicates
# --------------------------------------------------------------------------


def available_metrics(runs: Iterable[RunResult]) -> list[str]:
    """The numeric fields (dotted paths for nested ones) that runs report."""
    names: set[str] = set()

    def visit(node, prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                visit(value, name + ".")
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                if name not in _NON_METRIC_FIELDS:
                    names.add(name)

    for run in runs:
        visit(run.record, "")
    return sorted(names)


def check_metric_name(metric: str) -> str:
    """Validate the spelling of a metric path (``accuracy``, ``variants.soft_only.accuracy``)."""
    if not metric or any(not part.strip() for part in metric.split(".")):
        raise UserError(
            f"bad metric {metric!r}: use a field name such as accuracy or macro_f1, "
            "or a dotted path such as variants.soft_only.accuracy"
        )
    return metric


def select_metric(runs: Sequence[RunResult], metric: str, warnings: list[str]) -> list[tuple[RunResult, float]]:
    """Pair each run with its value of ``metric``; runs without it are skipped with one warning."""
    check_metric_name(metric)
    kept = []
    missing = []
    for run in runs:
        value = run.value(metric)
        if value is None:
            missing.append(run)
        else:
            kept.append((run, value))
    if not kept:
        raise UserError(
            f"metric {metric!r} is in none of the {len(runs)} results; "
            f"available: {', '.join(available_metrics(runs)) or 'none'}"
        )
    if missing:
        trainers = sorted({run.trainer for run in missing})
        warnings.append(
            f"metric {metric!r} missing from {len(missing)} result file(s) (trainers: {', '.join(trainers)}), "
            f"skipped; e.g. {missing[0].path}"
        )
    return kept


def drop_duplicates(
    pairs: list[tuple[RunResult, float]],
    key: Callable[[RunResult], tuple],
    warnings: list[str],
) -> list[tuple[RunResult, float]]:
    """Keep one result per key (the latest by timestamp, then by file time); warn about the rest."""
    by_key: dict[tuple, list[tuple[RunResult, float]]] = {}
    for pair in pairs:
        by_key.setdefault(key(pair[0]), []).append(pair)
    kept = []
    for group in by_key.values():
        if len(group) > 1:
            group.sort(key=lambda pair: (pair[0].timestamp, pair[0].path.stat().st_mtime))
            others = ", ".join(str(pair[0].path) for pair in group[:-1])
            warnings.append(f"duplicate results for the same run; using {group[-1][0].path}, ignoring {others}")
        kept.append(group[-1])
    return kept


# --------------------------------------------------------------------------
# Per-seed values for paired comparisons
# --------------------------------------------------------------------------


def per_config_values(
    root_or_runs: str | os.PathLike | LoadedResults | Iterable[RunResult],
    metric: str = DEFAULT_METRIC,
    dataset: str | None = None,
    require_dataset: bool = True,
    *,
    warnings: list[str] | None = None,
) -> dict[tuple[str, str], dict[str, dict[int, float]]]:
    """``{(trainer, config): {"base"|"new"|"hm": {seed: value}}}`` of one dataset's base-to-new runs.

    The record every paired per-seed check reads (``clipprompt.results.paired.seed_halves``;
    HM per seed over the seeds with both halves). ``root_or_runs`` is an output
    folder or runs already loaded. Runs of several datasets need ``dataset``;
    no base-to-new run at all is an error unless ``require_dataset`` is False
    (then ``{}``). A run found twice counts once (the latest, with a warning
    appended to ``warnings``).
    """
    if isinstance(root_or_runs, (str, os.PathLike)):
        where = str(root_or_runs)
        runs = load_results(root_or_runs).runs
    else:
        where = "the results"
        runs = root_or_runs.runs if isinstance(root_or_runs, LoadedResults) else list(root_or_runs)
    runs = [run for run in runs if run.half in ("base", "new") and (dataset is None or run.dataset == dataset)]
    datasets = sorted({run.dataset for run in runs})
    if len(datasets) > 1 or (require_dataset and not datasets):
        raise UserError(
            f"{where} holds base-to-new results of {len(datasets)} datasets ({', '.join(datasets)}); "
            "pass --dataset NAME"
        )
    if not runs:
        return {}
    warnings = [] if warnings is None else warnings
    pairs = drop_duplicates(
        select_metric(runs, metric, warnings), lambda run: (run.trainer, run.config, run.half, run.seed), warnings
    )
    found: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
    for run, value in pairs:
        found.setdefault((run.trainer, run.config), {"base": {}, "new": {}})[run.half][run.seed] = value
    return {key: seed_halves(halves["base"], halves["new"]) for key, halves in found.items()}
