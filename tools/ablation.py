"""Ablation runner: every (variant, seed) through the base-to-new scripts, then paired per-seed statistics.

    # choose defaults on the base classes only, then report the choice on the real split
    python tools/ablation.py --plan components --dataset fashion_mnist --pseudo --select-by hm \\
        --data DATA --out output/ablation --seeds 1 2 3 4 5 6 --jobs 2 \\
        --extra MODEL.BACKBONE.PATH output/mini/mini_clip/mini_clip.pt

    # a plain ablation on the real base/new split, from a plan file
    python tools/ablation.py --plan my_plan.json --dataset oxford_pets --data DATA --out output/abl_pets

A plan (JSON, or a Python literal so that it may hold comments; or a built-in
name, see ``--list-plans``) lists variants and names the reference they are
compared with::

    {"reference": "ensemble_only",
     "variants": [
        {"name": "ensemble_only", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1_ensemble_only"},
        {"name": "no_mi", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1",
         "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "0.0"], "note": "augmentation only"}]}

Runs. Each (variant, seed) is ``scripts/base2new_train.sh`` then
``scripts/base2new_test.sh`` (train on base, test on new), run in the
repository root with OMP_NUM_THREADS=1, ``--jobs`` at a time, seed by seed
(so that complete pairs accumulate first). Their output goes to a root per
variant, ``<out>/<stage>/<variant>/base2new/...``, because the scripts key
runs by config name only: two variants of one config with different options
would otherwise share a folder. ``<out>/ablation_manifest.json`` records
variant -> (trainer, cfg, opts) and the shared settings; rerunning with the
same --out reuses finished runs (their results.json exists), and a variant
name or --extra/--data that changed meaning is refused. Logs go to
``<out>/logs/<stage>/<variant>/``. A failed run is reported with its log and
the others continue; the exit status is then 1. A run folder without
results.json left by an interrupted invocation is moved aside
(``<dir>.old-<time>``) and run again; a lock on --out keeps two invocations
apart.

Stages. ``real``: the dataset's own base/new split. ``pseudo_<dataset>`` (--pseudo):
the dataset restricted to its base classes (train, val and test images of
those classes, a CustomDataset split file under ``<out>/pseudo_split/``),
whose own base/new split gives pseudo-base and pseudo-new classes: defaults
are chosen there without touching a new class or a test image (the base
classes' validation images are the pseudo test images). With --pseudo and
--select-by, the reference and the chosen variant then run on the real split
and are reported after the choice.

Statistics (``clipprompt.paired``). Per variant: Base, New and HM (the HM of
each seed's Base and New), mean ± sample std over the seeds that have both
halves. Against the reference: paired differences over the common seeds,
their mean, a 95% t-interval and a verdict (better / worse / unresolved).
Both for ``accuracy`` (DualPromptMI: the ensembled view) and, where runs
report it, ``variants.soft_only.accuracy``. Tables: printed, and written to
``<out>/ablation_<dataset>[_pseudo|_after_choice].{md,csv,json}``.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import csv
import fcntl
import io
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # from clip, via the datasets
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # clipprompt, train.py and datasets/ from this checkout

from clipprompt.errors import UserError, exit_status  # noqa: E402
from clipprompt.paired import (  # noqa: E402
    PairedDifference,
    format_difference,
    mean_and_std,
    paired_difference,
    per_seed_harmonic_mean,
)
from clipprompt.files import move_aside as move_run_aside  # noqa: E402
from clipprompt.results import RESULTS_FILENAME, format_mean_spread, load_result_file  # noqa: E402

MANIFEST_NAME = "ablation_manifest.json"
DEFAULT_CONFIG_ROOT = "configs/trainers"  # the scripts' CONFIG_ROOT; benchmarks/configs/trainers for the CPU benchmarks
LOCK_NAME = ".ablation.lock"
PSEUDO_SPLIT_FOLDER = "pseudo_split"
PSEUDO_DATASET = "custom"  # the pseudo split is a CustomDataset split file
HALVES = ("base", "new", "hm")
METRICS = ("accuracy", "variants.soft_only.accuracy")
PLAN_KEYS = {"name", "trainer", "cfg", "opts", "note"}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
KEY_PATTERN = re.compile(r"^[A-Z0-9_]+(\.[A-Z0-9_]+)*$")

# --------------------------------------------------------------------------
# Plans
# --------------------------------------------------------------------------

MINI_CFG = "mini_c4_ep20_batch8_ctxv1"  # DualPromptMI / CoOp on the mini CLIPs (CPU benchmarks)
MINI_CONFIG_ROOT = "benchmarks/configs/trainers"
DPMI = "TRAINER.DUALPROMPTMI."


def _dpmi(name: str, *opts: str, cfg: str = MINI_CFG, note: str = "") -> dict:
    return {"name": name, "trainer": "DualPromptMI", "cfg": cfg, "opts": list(opts), "note": note}


BUILTIN_PLANS = {
    "components": {
        "description": "what each DualPromptMI term adds to CoOp + the inference ensemble",
        "config_root": MINI_CONFIG_ROOT,
        "reference": "ensemble_only",
        "variants": [
            _dpmi("ensemble_only", cfg=MINI_CFG + "_ensemble_only", note="MI and augmentation off"),
            _dpmi("full", note="defaults"),
            _dpmi("no_mi", DPMI + "MI.WEIGHT", "0.0", note="augmentation only"),
            _dpmi("no_aug", DPMI + "AUG.WEIGHT", "0.0", note="MI only"),
            {"name": "coop", "trainer": "CoOp", "cfg": MINI_CFG, "note": "no ensemble"},
        ],
    },
    "mi_weight": {
        "config_root": MINI_CONFIG_ROOT,
        "description": "weight of the view MI term (the default gaussian mode)",
        "reference": "mi_8.0",
        "variants": [_dpmi(f"mi_{w}", DPMI + "MI.WEIGHT", w) for w in ("8.0", "2.0", "4.0", "16.0")],
    },
    "mi_mode": {
        "config_root": MINI_CONFIG_ROOT,
        "description": "the view-MI estimators, each at the weight of its selection round",
        "reference": "gaussian",
        "variants": [
            _dpmi("gaussian", note="defaults: fixed variance, W 8"),
            _dpmi("gaussian_learnt_var", DPMI + "MI.GAUSS_LEARN_VAR", "True", DPMI + "MI.WEIGHT", "1.0"),
            _dpmi("posterior", DPMI + "MI.MODE", "posterior", DPMI + "MI.WEIGHT", "3.0"),
            _dpmi("views_nce", DPMI + "MI.MODE", "views_nce", DPMI + "MI.WEIGHT", "3.0"),
            _dpmi("critic_infonce", DPMI + "MI.MODE", "critic", DPMI + "MI.WEIGHT", "1.0"),
        ],
    },
    "aug": {
        "config_root": MINI_CONFIG_ROOT,
        "description": "class-wise visual augmentation settings",
        "reference": "inter",
        "variants": [
            _dpmi("inter", note="defaults: inter-class mixup, weight 0.25"),
            _dpmi("intra", DPMI + "AUG.MODE", "intra"),
            _dpmi("inter_alpha0.4", DPMI + "AUG.ALPHA", "0.4"),
            _dpmi("no_aug_mi", DPMI + "AUG.MI_WEIGHT", "0.0", note="mixup CE only"),
            _dpmi("aug_1.0", DPMI + "AUG.WEIGHT", "1.0"),
        ],
    },
    "infer_weight": {
        "config_root": MINI_CONFIG_ROOT,
        "description": "weight of the soft view in the inference ensemble",
        "reference": "w_1.0",
        "variants": [_dpmi(f"w_{w}", DPMI + "INFER_WEIGHT", w) for w in ("1.0", "0.8", "0.5")],
    },
}


@dataclass(frozen=True)
class Variant:
    name: str
    trainer: str
    cfg: str
    opts: tuple[str, ...] = ()
    note: str = ""

    def definition(self) -> dict:
        """What the variant's results depend on (the manifest's record of it)."""
        return {"trainer": self.trainer, "cfg": self.cfg, "opts": list(self.opts)}


@dataclass(frozen=True)
class Plan:
    variants: tuple[Variant, ...]
    reference: str
    source: str
    config_root: str | None = None  # where its configs live, unless --config-root says otherwise

    def variant(self, name: str) -> Variant:
        return next(variant for variant in self.variants if variant.name == name)


def _option_value(value, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float, list, tuple)):
        return str(value)  # yacs decodes "True", "0.5", "['a', 'b']" with literal_eval
    raise UserError(f"{where}: option value {value!r} is not a string, number, boolean or list")


def check_options(opts: list, where: str) -> tuple[str, ...]:
    """KEY VALUE pairs as strings; a one-line UserError naming ``where`` otherwise."""
    if not isinstance(opts, (list, tuple)):
        raise UserError(f"{where}: opts must be a list of KEY VALUE strings, got {opts!r}")
    if len(opts) % 2:
        raise UserError(f"{where}: options must be KEY VALUE pairs; got an odd count: {' '.join(map(str, opts))}")
    keys = opts[0::2]
    for key in keys:
        if not isinstance(key, str) or not KEY_PATTERN.match(key):
            raise UserError(f"{where}: {key!r} is not a config key (e.g. TRAINER.DUALPROMPTMI.MI.WEIGHT)")
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise UserError(f"{where}: key(s) given twice: {', '.join(repeated)}")
    return tuple(str(item) if i % 2 == 0 else _option_value(item, where) for i, item in enumerate(opts))


def parse_plan(data, source: str) -> Plan:
    """Validate a plan object (see the module docstring)."""
    if not isinstance(data, dict) or not isinstance(data.get("variants"), list) or not data["variants"]:
        raise UserError(f"plan {source}: expected an object with a non-empty 'variants' list and a 'reference'")
    variants = []
    for index, entry in enumerate(data["variants"]):
        where = f"plan {source}, variant {index + 1}"
        if not isinstance(entry, dict):
            raise UserError(f"{where}: expected an object with name, trainer, cfg and opts")
        unknown = sorted(set(entry) - PLAN_KEYS)
        missing = sorted({"name", "trainer", "cfg"} - set(entry))
        if unknown or missing:
            problem = f"unknown key(s) {', '.join(unknown)}" if unknown else f"missing {', '.join(missing)}"
            raise UserError(f"{where}: {problem} (keys: {', '.join(sorted(PLAN_KEYS))})")
        name = entry["name"]
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise UserError(f"{where}: name {name!r} must be a folder name (letters, digits, . _ + -)")
        where = f"plan {source}, variant {name!r}"
        for key in ("trainer", "cfg"):
            if not isinstance(entry[key], str) or not NAME_PATTERN.match(entry[key]):
                raise UserError(f"{where}: {key} {entry[key]!r} must be a trainer name / config file stem")
        opts = check_options(entry.get("opts") or [], where)
        variants.append(Variant(name, entry["trainer"], entry["cfg"], opts, str(entry.get("note") or "")))
    seen: dict[str, str] = {}
    for variant in variants:
        # Case-insensitive: the roots are folders, and some file systems ignore case.
        key = variant.name.lower()
        if key in seen:
            raise UserError(f"plan {source}: variant names {seen[key]!r} and {variant.name!r} would share a folder")
        seen[key] = variant.name
    config_root = data.get("config_root")
    if config_root is not None and not (isinstance(config_root, str) and (REPO / config_root).is_dir()):
        raise UserError(f"plan {source}: config_root {config_root!r} is not a folder of the repository")
    return with_reference(Plan(tuple(variants), "", source, config_root), data.get("reference"))


def with_reference(plan: Plan, reference) -> Plan:
    """The plan compared against ``reference``, which must be one of its variants."""
    names = [variant.name for variant in plan.variants]
    if reference not in names:
        raise UserError(f"plan {plan.source}: reference {reference!r} is not one of the variants ({', '.join(names)})")
    return Plan(plan.variants, reference, plan.source, plan.config_root)


def load_plan(spec: str) -> Plan:
    """A plan file (JSON or Python literal) or the name of a built-in plan."""
    path = Path(spec)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as json_error:
            try:
                data = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise UserError(
                    f"plan file {path} is neither JSON ({json_error.msg}, line {json_error.lineno}) "
                    "nor a Python literal"
                ) from None
        return parse_plan(data, str(path))
    if spec in BUILTIN_PLANS:
        return parse_plan(BUILTIN_PLANS[spec], spec)
    raise UserError(f"--plan {spec}: no such file and no built-in plan of that name ({', '.join(BUILTIN_PLANS)})")


# --------------------------------------------------------------------------
# Stages, roots and command lines
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What every run shares."""

    out: Path
    data: str
    shots: int
    seeds: tuple[int, ...]
    extra: tuple[str, ...] = ()
    python: str = sys.executable
    repo: Path = REPO
    config_root: str = DEFAULT_CONFIG_ROOT  # trainer configs: <repo>/<config_root>/<trainer>/<cfg>.yaml


@dataclass(frozen=True)
class Stage:
    """A split the plan runs on: ``real`` (the dataset's own) or ``pseudo_<dataset>`` (its base classes only)."""

    name: str
    dataset: str  # config stem under configs/datasets/
    description: str
    dataset_opts: tuple[str, ...] = ()  # options that select the data (the pseudo split file)
    inherited: tuple[tuple[str, str], ...] = ()  # (key, value) of the source dataset config, see pseudo_stage

    def opts_for(self, variant: Variant, repo: Path = REPO, config_root: str = DEFAULT_CONFIG_ROOT) -> list[str]:
        """The stage's options for one variant; inherited keys yield to its trainer config, as in train.py."""
        opts = list(self.dataset_opts)
        if self.inherited:
            set_by_trainer = dict(flatten_yaml(trainer_config_path(repo, variant, config_root)))
            for key, value in self.inherited:
                if key not in set_by_trainer:
                    opts += [key, value]
        return opts


def real_stage(dataset: str) -> Stage:
    return Stage("real", dataset, f"the base/new split of {dataset}")


@dataclass(frozen=True)
class Step:
    """One script call: argv and environment (the variables it sets), its run folder and log."""

    kind: str  # "train" or "test"
    argv: tuple[str, ...]
    env: dict
    run_dir: Path
    log: Path

    @property
    def results(self) -> Path:
        return self.run_dir / RESULTS_FILENAME


def variant_root(out: Path, stage: str, variant: str) -> Path:
    """The OUTPUT of a variant's runs: one root per (stage, variant), so configs may be shared."""
    return Path(out) / stage / variant


def build_steps(variant: Variant, seed: int, stage: Stage, settings: Settings) -> tuple[Step, Step]:
    """The train and test script calls of one (variant, seed) on ``stage``."""
    root = variant_root(settings.out, stage.name, variant.name).resolve()
    env = {
        "TRAINER": variant.trainer,
        "CFG": variant.cfg,
        "SHOTS": str(settings.shots),
        "DATA": str(Path(settings.data).expanduser().resolve()),
        "OUTPUT": str(root),
        "PYTHON": settings.python,
        "CONFIG_ROOT": str(Path(settings.repo) / settings.config_root),
        "OMP_NUM_THREADS": "1",  # one core per run; --jobs sets the parallelism
        "MKL_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    opts = [*stage.opts_for(variant, settings.repo, settings.config_root), *variant.opts, *settings.extra]
    common = Path(stage.dataset) / f"shots_{settings.shots}" / variant.trainer / variant.cfg / f"seed{seed}"
    logs = Path(settings.out).resolve() / "logs" / stage.name / variant.name
    steps = []
    for kind, script, folder in (("train", "base2new_train.sh", "train_base"), ("test", "base2new_test.sh", "test_new")):
        argv = ("bash", str(settings.repo / "scripts" / script), stage.dataset, str(seed), *opts)
        run_dir = root / "base2new" / folder / common
        log = logs / f"{stage.dataset}_shots{settings.shots}_seed{seed}_{kind}.log"
        steps.append(Step(kind, argv, env, run_dir, log))
    return steps[0], steps[1]


def trainer_config_path(repo: Path, variant: Variant, config_root: str = DEFAULT_CONFIG_ROOT) -> Path:
    return Path(repo) / config_root / variant.trainer / f"{variant.cfg}.yaml"


def flatten_yaml(path: Path) -> list[tuple[str, object]]:
    """``[(dotted key, value), ...]`` of a YAML config file's leaves."""
    import yaml

    with open(path, encoding="utf-8") as handle:
        tree = yaml.safe_load(handle) or {}
    leaves = []

    def visit(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                visit(value, f"{prefix}{key}.")
            else:
                leaves.append((f"{prefix}{key}", value))

    visit(tree, "")
    return leaves


def check_configs(plan: Plan, dataset: str, settings: Settings) -> None:
    """Config files exist, --extra does not fight the plan, and (with Dassl's config) every key and value merges."""
    dataset_cfg = settings.repo / "configs" / "datasets" / f"{dataset}.yaml"
    if not dataset_cfg.is_file():
        known = sorted(path.stem for path in dataset_cfg.parent.glob("*.yaml"))
        raise UserError(f"--dataset {dataset}: {dataset_cfg} not found; known: {', '.join(known)}")
    extra_keys = set(settings.extra[0::2])
    for variant in plan.variants:
        path = trainer_config_path(settings.repo, variant, settings.config_root)
        if not path.is_file():
            known = sorted(p.stem for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
            hint = f"; configs of {variant.trainer}: {', '.join(known)}" if known else " (unknown trainer?)"
            raise UserError(f"variant {variant.name!r}: config file {path} not found{hint}")
        clash = sorted(extra_keys & set(variant.opts[0::2]))
        if clash:
            raise UserError(f"variant {variant.name!r} and --extra both set {', '.join(clash)}; set it in one place")
    import train

    for variant in plan.variants:
        args = train.build_parser().parse_args(
            ["--root", settings.data, "--trainer", variant.trainer, "--dataset-config-file", str(dataset_cfg),
             "--config-file", str(trainer_config_path(settings.repo, variant, settings.config_root)),
             *variant.opts, *settings.extra]
        )
        try:
            train.setup_cfg(args)
        except UserError as exc:
            raise UserError(f"variant {variant.name!r}: {exc}") from None
        except ImportError:
            return  # no Dassl here: the runs will say what is missing


def pseudo_stage(dataset: str, settings: Settings, write: bool = True) -> Stage:
    """The dataset restricted to its base classes, as a CustomDataset split under ``<out>/pseudo_split``.

    The split file keeps the base classes' train and val images (labels
    0..m-1), with the val images as its test set; the protocol's own base/new
    split of those m classes then gives pseudo-base and pseudo-new. The source dataset config's other keys (e.g.
    INPUT.SIZE) are passed on as options where the trainer config does not
    set them, so that the pseudo runs see the same inputs as the real ones.
    """
    out = Path(settings.out).resolve()
    split_path = out / PSEUDO_SPLIT_FOLDER / f"{dataset}_base_classes.json"
    dataset_cfg = settings.repo / "configs" / "datasets" / f"{dataset}.yaml"
    root = str(Path(settings.data).expanduser().resolve())
    if write:
        image_dir, template, ensemble = write_pseudo_split(dataset_cfg, root, split_path)
    else:  # --dry-run, --no-run: name the paths, touch nothing
        image_dir, template, ensemble = "<image folder of the dataset>", "<its template>", None
    inherited = tuple(
        (key, value if isinstance(value, str) else str(value))
        for key, value in flatten_yaml(dataset_cfg)
        if not key.startswith("DATASET.")
    )
    opts = ("DATASET.CUSTOM.IMAGE_DIR", str(image_dir), "DATASET.CUSTOM.SPLIT_FILE", str(split_path),
            "DATASET.CUSTOM.TEMPLATE", template)
    if ensemble:  # the source's own prompt ensemble, so that "dataset_ensemble" means the same there
        opts += ("DATASET.CUSTOM.ENSEMBLE_TEMPLATES", repr(list(ensemble)))
    description = (f"pseudo split: the base classes of {dataset}, split again into pseudo-base and pseudo-new "
                   "(no new class is used)")
    # Named after the source: the runs' tree says "custom" whatever the source is.
    return Stage(f"pseudo_{dataset}", PSEUDO_DATASET, description, opts, inherited)


def write_pseudo_split(dataset_cfg: Path, root: str, split_path: Path) -> tuple[str, str, list | None]:
    """Write the base-class split file; returns (image folder, hand-crafted template, prompt ensemble or None)."""
    import train  # Dassl's config and the datasets' registry
    from dassl.data.datasets import DATASET_REGISTRY

    import datasets  # noqa: F401  (registers the datasets)
    from clipprompt.fewshot import subsample_classes
    from clipprompt.splits import write_split

    cfg = train.setup_cfg(train.build_parser().parse_args(["--root", root, "--dataset-config-file", str(dataset_cfg)]))
    dataset_class = DATASET_REGISTRY.get(cfg.DATASET.NAME)
    # The first steps of CoOpDataset.__init__, without its few-shot sampling: find and read the splits.
    dataset = dataset_class.__new__(dataset_class)
    if getattr(dataset, "test_only", False):
        raise UserError(f"{dataset_cfg.stem} is an evaluation-only dataset: it has no training images to split")
    dataset.dataset_dir, dataset.image_dir = dataset.locate(cfg, root)
    dataset.split_path = dataset.locate_split_file(cfg, root)
    train_items, val_items, test_items = dataset.read_splits(cfg)
    base_train, base_val, base_test = subsample_classes(train_items, val_items or [], test_items, subsample="base")
    # Score the pseudo runs on the base classes' *validation* images, so that the choice never sees
    # a test image that the final Base number is measured on (datasets without val fall back to test).
    write_split(str(split_path), base_train, base_val, base_val or base_test, dataset.image_dir)
    template = getattr(dataset, "template", None)
    if template is None:
        from clipprompt.templates import dataset_template

        template = dataset_template(cfg.DATASET.NAME)
    return dataset.image_dir, template, getattr(dataset, "ensemble_templates", None)


# --------------------------------------------------------------------------
# Manifest and lock
# --------------------------------------------------------------------------


def update_manifest(plan: Plan, stages: list[Stage], settings: Settings) -> Path:
    """Record variant -> (trainer, cfg, opts) under --out; refuse a name or setting that changed meaning."""
    path = Path(settings.out) / MANIFEST_NAME
    shared = {"data": str(Path(settings.data).expanduser().resolve()), "extra": list(settings.extra),
              "config_root": settings.config_root}
    manifest = {"shared": shared, "variants": {}, "stages": {}}
    if path.is_file():
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} is not valid JSON ({exc.msg}); repair it or use another --out") from None
        for key, value in shared.items():
            # manifests written before config_root existed used the default
            before = manifest.get("shared", {}).get(key, DEFAULT_CONFIG_ROOT if key == "config_root" else None)
            if before != value:
                raise UserError(
                    f"{settings.out} holds runs made with {key}={before!r}, "
                    f"not {value!r}: use the same setting or another --out"
                )
    for variant in plan.variants:
        before = manifest.setdefault("variants", {}).get(variant.name)
        if before is not None and before != variant.definition():
            raise UserError(
                f"variant {variant.name!r} in {path} was {before}, the plan now says {variant.definition()}: "
                "rename the variant or use another --out (its finished runs would be reused)"
            )
        manifest["variants"][variant.name] = variant.definition()
    for stage in stages:
        record = {"description": stage.description, "options": list(stage.dataset_opts)}
        manifest.setdefault("stages", {})[f"{stage.name}/{stage.dataset}"] = record
    manifest["layout"] = "<out>/<stage>/<variant>/base2new/{train_base,test_new}/<dataset>/shots_<K>/<trainer>/<cfg>/seed<S>"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def acquire_lock(out: Path):
    """An exclusive lock on --out for this process (released when it exits)."""
    Path(out).mkdir(parents=True, exist_ok=True)
    handle = open(Path(out) / LOCK_NAME, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        raise UserError(f"another tools/ablation.py is running on {out} ({handle.read().strip()}); wait for it")
    handle.truncate(0)
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------

_print_lock = threading.Lock()


def say(message: str, stream=None) -> None:
    with _print_lock:
        print(message, file=stream or sys.stdout, flush=True)


def move_aside(run_dir: Path) -> None:
    """Move a leftover run folder out of the way (the scripts never overwrite one)."""
    if run_dir.exists():
        aside = move_run_aside(run_dir)
        say(f"note: moved the unfinished or outdated run {run_dir} to {aside}")


def last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def execute(step: Step, repo: Path) -> int:
    """Run one script call with its output in its log; returns the exit status."""
    step.log.parent.mkdir(parents=True, exist_ok=True)
    with open(step.log, "w", encoding="utf-8") as log:
        variables = " ".join(f"{key}={shlex.quote(value)}" for key, value in step.env.items())
        log.write(f"# {variables} {shlex.join(step.argv)}\n")
        log.flush()
        completed = subprocess.run(step.argv, cwd=repo, env={**os.environ, **step.env},
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return completed.returncode


@dataclass
class Outcome:
    variant: str
    seed: int
    status: str  # "reused", "done" or "failed"
    message: str = ""
    seconds: float = 0.0


def run_pair(variant: Variant, seed: int, stage: Stage, settings: Settings) -> Outcome:
    """Train on base then test on new, skipping what is finished."""
    train, test = build_steps(variant, seed, stage, settings)
    if train.results.is_file() and test.results.is_file():
        return Outcome(variant.name, seed, "reused")
    start = time.monotonic()
    if not train.results.is_file():
        move_aside(train.run_dir)
        move_aside(test.run_dir)  # evaluated a model that is about to be replaced
    for step in (train, test):
        if step.results.is_file():
            continue
        move_aside(step.run_dir)
        status = execute(step, settings.repo)
        if status != 0 or not step.results.is_file():
            why = f"exit {status}" if status != 0 else f"no {RESULTS_FILENAME} written"
            detail = last_line(step.log)
            message = (f"{step.kind} of {variant.name} seed {seed} on {stage.dataset} failed ({why})"
                       f"{': ' + detail if detail else ''}; log: {step.log}")
            return Outcome(variant.name, seed, "failed", message, time.monotonic() - start)
    return Outcome(variant.name, seed, "done", seconds=time.monotonic() - start)


def run_stage(variants: list[Variant], stage: Stage, settings: Settings, jobs: int) -> list[Outcome]:
    """Every (variant, seed), seed-major; the first pending one alone (it may prepare the data and caches)."""
    pairs = [(variant, seed) for seed in settings.seeds for variant in variants]
    say(f"== {stage.name}: {stage.description}; {len(variants)} variant(s) x {len(settings.seeds)} seed(s), "
        f"jobs={jobs}")
    outcomes: list[Outcome] = []

    def record(outcome: Outcome) -> None:
        outcomes.append(outcome)
        position = f"[{len(outcomes)}/{len(pairs)}]"
        if outcome.status == "failed":
            say(f"{position} FAILED: {outcome.message}", sys.stderr)
        elif outcome.status == "done":
            say(f"{position} done {outcome.variant} seed {outcome.seed} ({outcome.seconds:.0f} s)")

    pending = []
    for variant, seed in pairs:
        train, test = build_steps(variant, seed, stage, settings)
        if train.results.is_file() and test.results.is_file():
            record(Outcome(variant.name, seed, "reused"))
        else:
            pending.append((variant, seed))
    if len(outcomes):
        say(f"reusing {len(outcomes)} finished run(s)")
    if pending:
        record(run_pair(*pending[0], stage, settings))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = [pool.submit(run_pair, variant, seed, stage, settings) for variant, seed in pending[1:]]
        for future in concurrent.futures.as_completed(futures):
            record(future.result())
    finally:
        # On Ctrl-C the running scripts got the signal too; start no queued ones.
        pool.shutdown(wait=True, cancel_futures=True)
    return outcomes


# --------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------


@dataclass
class VariantResult:
    """One variant's per-seed values of one metric; only seeds with both halves count."""

    variant: Variant
    values: dict  # half -> {seed: value}, halves "base", "new", "hm"
    incomplete: dict  # seed -> which half is missing, e.g. {3: "new"}

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted(self.values["hm"]))

    def stats(self, half: str) -> tuple[float | None, float | None]:
        return mean_and_std([self.values[half][seed] for seed in self.seeds])


@dataclass
class MetricTable:
    stage: Stage
    metric: str
    reference: str
    results: list  # VariantResult, plan order
    differences: dict  # variant -> half -> PairedDifference (not for the reference)
    notes: list


def read_value(path: Path, metric: str, problems: list) -> float | None:
    if not path.is_file():
        return None
    try:
        return load_result_file(path).value(metric)
    except UserError as exc:
        problems.append(f"skipped: {exc}")
        return None


def collect(variant: Variant, stage: Stage, settings: Settings, metric: str, problems: list) -> VariantResult | None:
    """The variant's values of ``metric``; None when its results exist but none reports it (CoOp's soft_only)."""
    halves = {"base": {}, "new": {}}
    incomplete = {}
    found = 0
    for seed in settings.seeds:
        train, test = build_steps(variant, seed, stage, settings)
        found += train.results.is_file() + test.results.is_file()
        base = read_value(train.results, metric, problems)
        new = read_value(test.results, metric, problems)
        if base is not None and new is not None:
            halves["base"][seed], halves["new"][seed] = base, new
        elif base is not None or new is not None:
            incomplete[seed] = "new" if new is None else "base"
    if found and not halves["base"] and not incomplete:
        return None
    halves["hm"] = per_seed_harmonic_mean(halves["base"], halves["new"])
    return VariantResult(variant, halves, incomplete)


def aggregate(plan: Plan, variants: list[Variant], stage: Stage, settings: Settings, metric: str) -> MetricTable | None:
    """Per-variant means and paired differences against the reference; None if no run has ``metric``."""
    notes: list[str] = []
    results = [r for r in (collect(v, stage, settings, metric, notes) for v in variants) if r is not None]
    if not any(result.seeds or result.incomplete for result in results):
        return None
    by_name = {result.variant.name: result for result in results}
    reference = by_name.get(plan.reference)
    differences = {}
    if reference is None:
        notes.append(f"the reference {plan.reference!r} has no {metric}: no paired differences")
    else:
        for result in results:
            if result is not reference:
                differences[result.variant.name] = {
                    half: paired_difference(reference.values[half], result.values[half]) for half in HALVES
                }
    for result in results:
        notes += [f"{result.variant.name}, seed {seed}: {half} half missing" for seed, half in result.incomplete.items()]
        absent = sorted(set(settings.seeds) - set(result.seeds) - set(result.incomplete))
        if absent:
            notes.append(f"{result.variant.name}: no results for seed(s) {', '.join(map(str, absent))}")
    return MetricTable(stage, metric, plan.reference, results, differences, notes)


@dataclass
class Selection:
    by: str
    best: str
    mean: float
    versus_reference: PairedDifference | None
    text: str


def select_best(table: MetricTable, by: str = "hm") -> Selection | None:
    """The variant with the best mean ``by`` (ties: plan order) and its paired difference to the reference."""
    ranked = [(result.stats(by)[0], -index, result) for index, result in enumerate(table.results) if result.seeds]
    if not ranked:
        return None
    mean, _, best = max(ranked, key=lambda item: item[:2])
    label = by.upper() if by == "hm" else by.capitalize()
    text = f"best mean {label} ({table.metric}, on {table.stage.name}): {best.variant.name} ({mean:.2f})"
    versus = table.differences.get(best.variant.name, {}).get(by)
    if best.variant.name == table.reference:
        text += "; it is the reference itself"
        others = [item for item in ranked if item[2] is not best]
        if others:
            runner_up = max(others, key=lambda item: item[:2])[2].variant.name
            text += f"; runner-up {runner_up}: {format_difference(table.differences[runner_up][by])}"
    elif versus is not None:
        resolved = "resolved" if versus.resolved else "unresolved: within seed noise, more seeds needed"
        text += f"; vs the reference {table.reference}: {format_difference(versus)} over {versus.n} seed(s) ({resolved})"
    if len({result.seeds for _, _, result in ranked}) > 1:
        text += " [warning: the variants' means use different seeds]"
    return Selection(by, best.variant.name, mean, versus, text)


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


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
        say(f"no results yet for the {stage.name} stage under {Path(settings.out) / stage.name}")
        return [], None
    selection = select_best(tables[0], select_by) if select_by else None
    markdown = to_markdown(tables, selection, title)
    print(markdown, flush=True)
    prefix = Path(settings.out) / stem
    prefix.with_suffix(".md").write_text(markdown, encoding="utf-8")
    prefix.with_suffix(".csv").write_text(to_csv(tables), encoding="utf-8")
    prefix.with_suffix(".json").write_text(json.dumps(to_json(tables, selection, settings), indent=2) + "\n",
                                           encoding="utf-8")
    say(f"wrote {prefix}.md, .csv and .json")
    return tables, selection


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See the module docstring of tools/ablation.py for the plan format and layout.")
    p.add_argument("--plan", help="plan file (JSON or Python literal) or a built-in plan name (--list-plans)")
    p.add_argument("--list-plans", action="store_true", help="print the built-in plans and exit")
    p.add_argument("--reference", help="compare against this variant instead of the plan's reference")
    p.add_argument("--dataset", help="dataset config stem under configs/datasets (e.g. fashion_mnist)")
    p.add_argument("--data", default="./data", help="dataset root (DATA of the scripts)")
    p.add_argument("--out", help="output folder of the ablation")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5, 6], help="seeds (default 1..6)")
    p.add_argument("--shots", type=int, default=16, help="shots per class (default 16)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once, one thread each (default 2)")
    p.add_argument("--extra", nargs="+", default=[], metavar="KEY VALUE",
                   help="options appended to every run (e.g. MODEL.BACKBONE.PATH ckpt; paths from the repository root)")
    p.add_argument("--python", default=sys.executable, help="interpreter for train.py (PYTHON of the scripts)")
    p.add_argument("--config-root", default=os.environ.get("CONFIG_ROOT"),
                   help="folder of the trainer configs, relative to the repository (CONFIG_ROOT of the scripts; "
                        f"default: the plan's config_root, else {DEFAULT_CONFIG_ROOT}; "
                        f"the built-in plans use {MINI_CONFIG_ROOT})")
    p.add_argument("--pseudo", action="store_true",
                   help="run the plan on the base classes only, split into pseudo-base / pseudo-new")
    p.add_argument("--select-by", choices=("hm", "base", "new"),
                   help="name the variant with the best mean (with --pseudo: then run it and the reference on the real split)")
    p.add_argument("--no-confirm", action="store_true", help="with --pseudo --select-by: stop after the choice")
    p.add_argument("--no-run", action="store_true", help="only aggregate the results that exist")
    p.add_argument("--dry-run", action="store_true", help="print the script calls, run and write nothing")
    return p


def list_plans() -> str:
    lines = []
    for name, plan in BUILTIN_PLANS.items():
        lines.append(f"{name}: {plan['description']} (reference: {plan['reference']})")
        for variant in parse_plan(plan, name).variants:
            note = f"  # {variant.note}" if variant.note else ""
            lines.append(f"    {variant.name}: {variant.trainer} {variant.cfg} {' '.join(variant.opts)}".rstrip() + note)
    return "\n".join(lines)


def settings_from_args(args) -> Settings:
    for flag in ("plan", "dataset", "out"):
        if not getattr(args, flag):
            raise UserError(f"--{flag} is required (see --help)")
    if args.shots < 1 or args.jobs < 1:
        raise UserError("--shots and --jobs must be at least 1")
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        raise UserError(f"--seeds must be distinct and >= 0, got {' '.join(map(str, args.seeds))}")
    extra = check_options(args.extra, "--extra")
    return Settings(Path(args.out), args.data, args.shots, tuple(args.seeds), extra, args.python)


def with_config_root(settings: Settings, given: str | None, plan: Plan) -> Settings:
    """--config-root (or CONFIG_ROOT) if given, else the plan's config_root, else configs/trainers."""
    root = given or plan.config_root or DEFAULT_CONFIG_ROOT
    root = os.path.relpath(Path(root).resolve(), REPO) if os.path.isabs(root) else os.path.normpath(root)
    if not (REPO / root).is_dir():
        raise UserError(f"--config-root {given or root}: no such folder (relative to {REPO})")
    return replace(settings, config_root=root)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_plans:
        print(list_plans())
        return 0
    started = time.monotonic()
    settings = settings_from_args(args)
    plan = load_plan(args.plan)
    if args.reference:
        plan = with_reference(plan, args.reference)
    settings = with_config_root(settings, args.config_root, plan)
    check_configs(plan, args.dataset, settings)
    variants = list(plan.variants)
    acting = not (args.dry_run or args.no_run)
    lock = acquire_lock(settings.out) if acting else None  # noqa: F841  (held until exit)

    first = pseudo_stage(args.dataset, settings, write=acting) if args.pseudo else real_stage(args.dataset)
    stages = [first, real_stage(args.dataset)] if args.pseudo else [first]
    if args.dry_run:
        for variant in variants:
            for seed in settings.seeds:
                for step in build_steps(variant, seed, first, settings):
                    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in step.env.items() if k != "PYTHONUNBUFFERED")
                    print(f"{env} {shlex.join(step.argv)}")
        return 0
    if acting:
        say(f"manifest: {update_manifest(plan, stages, settings)}")

    outcomes = run_stage(variants, first, settings, args.jobs) if acting else []
    failed = [outcome for outcome in outcomes if outcome.status == "failed"]
    title = f"Ablation on the {'pseudo split' if args.pseudo else 'base/new split'} of {args.dataset}"
    stem = f"ablation_{args.dataset}" + ("_pseudo" if args.pseudo else "")
    tables, selection = report(plan, variants, first, settings, args.select_by, title, stem)
    if selection is not None and not args.pseudo:
        say("note: chosen on the real new classes; to choose defaults without them, use --pseudo")

    if args.pseudo and selection is not None and not args.no_confirm:
        if failed:
            say("not running the choice on the real split: some pseudo-split runs failed (see above)", sys.stderr)
        else:
            chosen = [plan.variant(plan.reference)]
            if selection.best != plan.reference:
                chosen.append(plan.variant(selection.best))
            real = stages[1]
            if acting:
                outcomes_real = run_stage(chosen, real, settings, args.jobs)
                outcomes += outcomes_real
                failed += [outcome for outcome in outcomes_real if outcome.status == "failed"]
            report(plan, chosen, real, settings, None,
                   f"After the choice: {selection.best} on the real split of {args.dataset}",
                   f"ablation_{args.dataset}_after_choice")

    counts = {status: sum(outcome.status == status for outcome in outcomes) for status in ("done", "reused", "failed")}
    say(f"wall time: {time.monotonic() - started:.1f} s (runs: {counts['done']} made, {counts['reused']} reused, "
        f"{counts['failed']} failed)")
    for outcome in failed:
        say(f"FAILED: {outcome.message}", sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(exit_status(main))
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        sys.exit(130)
