"""The splits a plan runs on, and each (variant, seed) of a split as a ``tools.gridlib.Job``.

``real``: the dataset's own base/new split. ``pseudo_<dataset>``: the dataset restricted to its base
classes (a CustomDataset split file under ``<out>/pseudo_split/``), whose own base/new split gives
pseudo-base and pseudo-new classes, so that defaults are chosen without a new class or a test image.

A job is ``scripts/base2new_train.sh`` then ``scripts/base2new_test.sh`` with OUTPUT set to a root
per (stage, variant), ``<out>/<stage>/<variant>``: the scripts key runs by config name only, and two
variants of one config with different options would otherwise share a folder. The run folders
inside come from the scripts (``tools.gridlib.run_dir_of``, RUN_DIR_ONLY=1): one home for the layout.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
from dataclasses import dataclass
from pathlib import Path

from clipprompt.errors import UserError
from tools.ablationlib.plan import (
    DEFAULT_CONFIG_ROOT,
    REPO,
    Settings,
    Variant,
    flatten_yaml,
    have_dassl,
    trainer_config_path,
)
from tools.gridlib import Job, Step, run_dir_of

PSEUDO_SPLIT_FOLDER = "pseudo_split"
# --pseudo-split -> (stage name prefix, split file suffix): "label" cuts the base classes by label
# order; "word_disjoint" keeps pseudo-new classes that share no class-name word with pseudo-base
# ones (tools/ablationlib/wordsplit.py), as the real split of fashion_colours does.
PSEUDO_SPLITS = {"label": ("pseudo", ""), "word_disjoint": ("pseudowd", "_word_disjoint")}
PSEUDO_DATASET = "custom"  # the pseudo split is a CustomDataset split file
SCRIPTS = ("base2new_train.sh", "base2new_test.sh")  # train on the base classes, then test on the new ones
NEEDS_DASSL = ("--pseudo needs Dassl (it reads the dataset's split with Dassl's dataset classes): "
               "install it with bash scripts/install_dassl.sh (offline: DASSL_SRC=/path/to/Dassl.pytorch "
               "bash scripts/install_dassl.sh)")


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


def variant_root(out: Path, stage: str, variant: str) -> Path:
    """The OUTPUT of a variant's runs: one root per (stage, variant), so configs may be shared."""
    return Path(out) / stage / variant


@functools.lru_cache(maxsize=None)  # the run folders cost one script call each; every argument is frozen
def build_job(variant: Variant, seed: int, stage: Stage, settings: Settings) -> Job:
    """The train and test script calls of one (variant, seed) on ``stage``, logged to
    ``<out>/logs/<stage>/<variant>/<dataset>_shots<K>_seed<S>.log``; an unfinished run restarts afresh."""
    root = variant_root(settings.out, stage.name, variant.name).resolve()
    env = {
        "TRAINER": variant.trainer,
        "CFG": variant.cfg,
        "SHOTS": str(settings.shots),
        "DATA": str(Path(settings.data).expanduser().resolve()),
        "OUTPUT": str(root),
        "PYTHON": settings.python,
        "CONFIG_ROOT": os.path.normpath(Path(settings.repo) / settings.config_root),
    }
    opts = (*stage.opts_for(variant, settings.repo, settings.config_root), *variant.opts, *settings.extra)
    args = (stage.dataset, str(seed))
    steps = [Step(script, args, run_dir_of(script, (*args, *opts), env, settings.repo)) for script in SCRIPTS]
    log = Path(settings.out).resolve() / "logs" / stage.name / variant.name / f"{stage.dataset}_shots{settings.shots}_seed{seed}.log"
    return Job(f"{variant.name} seed {seed} ({stage.name})", steps, env, opts, log, resume=False)


def stage_jobs(variants: list[Variant], stage: Stage, settings: Settings) -> list[Job]:
    """Every (variant, seed), seed by seed, so that complete pairs accumulate first."""
    pairs = [(variant, seed) for seed in settings.seeds for variant in variants]
    # Each job asks the scripts for its two run folders: ask for several jobs at once.
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda pair: build_job(pair[0], pair[1], stage, settings), pairs))


def pseudo_stage(dataset: str, settings: Settings, write: bool = True, split: str = "label") -> Stage:
    """The dataset restricted to its base classes, as a CustomDataset split under ``<out>/pseudo_split``.

    The split file keeps the base classes' train and val images (labels 0..m-1), with the val images
    as its test set; the protocol's own base/new split of those m classes then gives pseudo-base and
    pseudo-new. ``split="word_disjoint"`` keeps only the classes of a word-disjoint split
    (``wordsplit.word_disjoint_split``), relabelled so that the protocol's base half is its pseudo-base.
    The source dataset config's other keys (e.g. INPUT.SIZE) are passed on as options where the
    trainer config does not set them, so that the pseudo runs see the same inputs as the real ones. ``write=False`` (--dry-run, --no-run): name the paths, touch nothing.
    """
    if split not in PSEUDO_SPLITS:
        raise UserError(f"--pseudo-split {split}: choose one of {', '.join(PSEUDO_SPLITS)}")
    prefix, suffix = PSEUDO_SPLITS[split]
    out = Path(settings.out).resolve()
    split_path = out / PSEUDO_SPLIT_FOLDER / f"{dataset}_base_classes{suffix}.json"
    dataset_cfg = settings.repo / "configs" / "datasets" / f"{dataset}.yaml"
    root = str(Path(settings.data).expanduser().resolve())
    if write:
        image_dir, template, ensemble = write_pseudo_split(dataset_cfg, root, split_path, split)
    else:
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
    how = ("by label order" if split == "label"
           else "so that no pseudo-new class name shares a word with a pseudo-base one")
    description = (f"pseudo split: the base classes of {dataset}, split again into pseudo-base and pseudo-new {how} "
                   "(no new class is used)")
    # Named after the source: the runs' tree says "custom" whatever the source is.
    return Stage(f"{prefix}_{dataset}", PSEUDO_DATASET, description, opts, inherited)


def word_disjoint_items(train: list, val: list, test: list) -> tuple[list, list, list]:
    """The items (``clipprompt.data.splits.Item``) of the word-disjoint split of their classes, relabelled
    pseudo-base first; the classes are those of ``train``."""
    from clipprompt.data.splits import Item
    from tools.ablationlib.wordsplit import check_protocol, word_disjoint_split

    names = {}
    for item in train:
        names.setdefault(item.label, item.classname)
    labels = sorted(names)
    chosen = word_disjoint_split([names[label] for label in labels])
    check_protocol(chosen)
    relabel = {labels[index]: new for index, new in chosen.relabel().items()}
    return tuple(
        [Item(item.impath, relabel[item.label], item.classname) for item in items if item.label in relabel]
        for items in (train, val, test)
    )


def write_pseudo_split(dataset_cfg: Path, root: str, split_path: Path,
                       split: str = "label") -> tuple[str, str, list | None]:
    """Write the base-class split file; returns (image folder, hand-crafted template, prompt ensemble or None)."""
    if not have_dassl():
        raise UserError(NEEDS_DASSL)
    from dassl.data.datasets import DATASET_REGISTRY

    import datasets  # noqa: F401  (registers the datasets)
    import train  # Dassl's config and the datasets' registry
    from clipprompt.data.fewshot import subsample_classes
    from clipprompt.data.splits import write_split

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
    if split == "word_disjoint":
        base_train, base_val, base_test = word_disjoint_items(base_train, base_val, base_test)
    # Score the pseudo runs on the base classes' *validation* images, so that the choice never sees
    # a test image that the final Base number is measured on (datasets without val fall back to test).
    write_split(str(split_path), base_train, base_val, base_val or base_test, dataset.image_dir)
    template = getattr(dataset, "template", None)
    if template is None:
        from clipprompt.prompts.templates import dataset_template

        template = dataset_template(cfg.DATASET.NAME)
    return dataset.image_dir, template, getattr(dataset, "ensemble_templates", None)
