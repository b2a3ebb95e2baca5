"""The order of a table's rows: datasets as in CoOp/CoCoOp's tables, trainers as in
:data:`TRAINER_ORDER`, each method's Average after its datasets. Names not listed follow the listed
ones, alphabetically (case-insensitive)."""

from __future__ import annotations

from clipprompt.catalog import TRAINER_NAMES

# Row order of CoOp/CoCoOp's tables (Dassl registry names); others follow
# alphabetically.
PAPER_DATASET_ORDER = (
    "ImageNet",
    "Caltech101",
    "OxfordPets",
    "StanfordCars",
    "OxfordFlowers",
    "Food101",
    "FGVCAircraft",
    "SUN397",
    "DescribableTextures",
    "EuroSAT",
    "UCF101",
    "ImageNetV2",
    "ImageNetSketch",
    "ImageNetA",
    "ImageNetR",
)
# Row order of the trainers: every trainer of trainers/ (train.py's TRAINER_NAMES, in its order;
# tests/test_results.py checks the two agree), the zero-shot baselines first, DualPromptMI last.
# The one list the results code sorts by.
TRAINER_ORDER = TRAINER_NAMES  # the trainers in their one order (clipprompt/catalog.py)

AVERAGE_LABEL = "Average"


def sort_key_dataset(name: str) -> tuple:
    if name == AVERAGE_LABEL:
        return (2, 0, name)
    if name in PAPER_DATASET_ORDER:
        return (0, PAPER_DATASET_ORDER.index(name), name)
    return (1, 0, name.lower())


def sort_key_trainer(name: str) -> tuple:
    if name in TRAINER_ORDER:
        return (0, TRAINER_ORDER.index(name), name)
    return (1, 0, name.lower())


def shots_key(shots: int | None) -> tuple:
    return (shots is None, shots or 0)
