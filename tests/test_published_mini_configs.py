"""benchmarks/configs/trainers/*/mini_published_*.yaml: each is the published config its header names,
changed only where the mini CLIP forces it (the CPU benchmarks' default SCHEDULE=published)."""

import glob
import json
import math
import os
import re

import pytest
import yaml

from benchmarks.mini_clip.recipe import make_recipe
from conftest import REPO

CONFIGS = sorted(glob.glob(os.path.join(REPO, "benchmarks", "configs", "trainers", "*", "mini_published_*.yaml")))
# Depth keys per trainer section: (key, tower). MaPLe's one depth serves both towers: the smaller bound.
DEPTH_KEYS = {"MAPLE": [("PROMPT_DEPTH", "both")],
              "PROMPTSRC": [("PROMPT_DEPTH_TEXT", "text"), ("PROMPT_DEPTH_VISION", "vision")],
              "DUALPROMPTMI": [("DEEP.TEXT_DEPTH", "text"), ("DEEP.VISION_DEPTH", "vision")]}


def read_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def source_of(path):
    with open(path) as f:
        found = re.search(r"^# Copied from (configs/trainers/\S+\.yaml)", f.read(), re.MULTILINE)
    assert found, f"{path}: its header must name the published config it was copied from"
    return os.path.join(REPO, found.group(1))


def scaled_depth(published, blocks):
    return max(1, math.floor(published * blocks / 12))


def test_every_trainer_with_a_published_setting_has_its_mini_published_config():
    trainers = {os.path.basename(os.path.dirname(path)) for path in CONFIGS}
    assert trainers == {"CoOp", "CoCoOp", "KgCoOp", "ProGrad", "MaPLe", "PromptSRC", "DualPromptMI"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, REPO))
def test_a_mini_published_config_is_the_published_one_but_for_the_stated_changes(path):
    published, mini = read_yaml(source_of(path)), read_yaml(path)
    # Both benchmarks' mini CLIPs have the same towers and input size.
    for name in ("fashion10", "fashion_colours"):
        recipe = make_recipe(name)
        assert (recipe.text_layers, recipe.vision_layers, recipe.image_resolution) == (3, 4, 32)
    blocks = {"text": 3, "vision": 4}
    expected = json.loads(json.dumps(published))
    expected["INPUT"]["SIZE"] = "(32, 32)"
    expected["DATALOADER"]["TEST"]["BATCH_SIZE"] = 500
    expected["DATALOADER"]["NUM_WORKERS"] = 0
    expected["TRAIN"]["PRINT_FREQ"] = 1000
    (section_name, section), = expected["TRAINER"].items()
    section["PREC"] = "fp32"
    for key, tower in DEPTH_KEYS.get(section_name, []):
        *parents, leaf = key.split(".")
        holder = section
        for parent in parents:
            holder = holder.get(parent, {})
        if leaf not in holder:  # e.g. DualPromptMI over CoOp's context: no deep prompts
            continue
        bound = min(blocks.values()) if tower == "both" else blocks[tower]
        holder[leaf] = scaled_depth(holder[leaf], bound)
    assert mini == expected
    with open(path) as f:
        header = f.read()
    for stated in ("INPUT.SIZE (32, 32)", "PREC fp32"):  # every change is said in the comment
        assert stated in header
