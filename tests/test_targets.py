"""benchmarks/targets.py: DualPromptMI's paired HM comparisons and the per-seed collapse check."""

import json
import os

import pytest

from benchmarks import targets
from clipprompt.errors import UserError
from clipprompt.results import harmonic_mean, per_config_values
from conftest import run_cli

METHOD_CFG = "mini_c4_ep20_batch8_ctxv1"
SEEDS = (1, 2, 3)


def _write(root, trainer, config, by_seed, variants=None):
    """by_seed: {seed: (base, new)}; variants: {name: {seed: (base, new)}} written under "variants"."""
    for seed, (base, new) in by_seed.items():
        for index, (half, folder, value) in enumerate((("base", "train_base", base), ("new", "test_new", new))):
            path = os.path.join(root, folder, "fashion_colours", "shots_16", trainer, config, f"seed{seed}")
            os.makedirs(path, exist_ok=True)
            record = {"trainer": trainer, "dataset": "FashionColours", "config": config, "seed": seed,
                      "subsample": half, "accuracy": value}
            if variants:
                record["variants"] = {name: {"accuracy": v[seed][index]} for name, v in variants.items()}
            with open(os.path.join(path, "results.json"), "w") as f:
                json.dump(record, f)


def _tree(root, soft_base=(66.0, 67.0, 65.0)):
    _write(root, "ZeroshotCLIP", "mini", {s: (60.0, 75.0) for s in SEEDS})
    _write(root, "CoOp", METHOD_CFG, {1: (70.0, 65.0), 2: (71.0, 62.0), 3: (69.0, 66.0)})
    _write(root, "KgCoOp", METHOD_CFG, {1: (69.0, 71.0), 2: (70.0, 70.0), 3: (68.0, 70.0)})
    _write(root, "DualPromptMI", METHOD_CFG + "_ensemble_only", {1: (68.0, 71.0), 2: (69.0, 71.5), 3: (67.5, 70.0)})
    soft = {s: (b, 60.0) for s, b in zip(SEEDS, soft_base)}
    hand = {s: (60.0, 75.0) for s in SEEDS}
    _write(root, "DualPromptMI", METHOD_CFG, {1: (70.0, 73.0), 2: (71.0, 73.5), 3: (70.0, 72.5)},
           variants={"soft_only": soft, "hand_only": hand})
    return str(root)


def test_paired_hm_against_each_baseline_and_the_ensemble(tmp_path):
    root = _tree(tmp_path)
    values = per_config_values(root, "accuracy")
    compared = targets.comparisons(values, ("DualPromptMI", METHOD_CFG))
    assert all(is_target for _, _, is_target in compared)
    rows = {label: diff for label, diff, _ in compared}
    assert set(rows) == {"CoOp", "KgCoOp", "CoOp + ensemble"}  # CoCoOp and ProGrad were not run
    expected = [harmonic_mean(70.0, 73.0) - harmonic_mean(68.0, 71.0), harmonic_mean(71.0, 73.5) - harmonic_mean(69.0, 71.5),
                harmonic_mean(70.0, 72.5) - harmonic_mean(67.5, 70.0)]
    assert rows["CoOp + ensemble"].differences == pytest.approx(expected)
    assert rows["KgCoOp"].ci_low > 0


def test_collapse_is_caught_per_seed_from_the_soft_view(tmp_path):
    root = _tree(tmp_path, soft_base=(66.0, 59.5, 65.0))  # seed 2: soft view below zero-shot's 60 on base
    rows = targets.seed_rows(root, ("DualPromptMI", METHOD_CFG))
    assert [(seed, kept) for seed, _, _, kept in rows] == [(1, True), (2, False), (3, True)]
    assert rows[1][1]["soft only"] == (59.5, 60.0) and rows[1][1]["hand only"] == (60.0, 75.0)
    result = run_cli(["benchmarks/targets.py", root])
    assert result.returncode == 1, result.stderr
    assert "| 2 | 71.00 / 73.50 | 59.50 / 60.00 | 60.00 / 75.00 | 60.00 | NO (collapse) |" in result.stdout
    assert "soft view below zero-shot base on seed(s) 2" in result.stdout


def test_all_targets_met_exits_zero(tmp_path):
    root = _tree(tmp_path)
    result = run_cli(["benchmarks/targets.py", root])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "targets: met" in result.stdout


def test_missing_method_run_names_what_exists(tmp_path):
    root = _tree(tmp_path)
    with pytest.raises(UserError, match="no base-to-new results of DualPromptMI=other"):
        targets.main([root, "--method", "DualPromptMI=other"])
    with pytest.raises(UserError, match="write TRAINER=CFG"):
        targets.main([root, "--method", "DualPromptMI"])


def test_a_variant_is_compared_with_the_default_ensemble_and_the_default_for_information(tmp_path):
    """--method DualPromptMI=<cfg>_ivlp: "CoOp + ensemble" is the default's ensemble-only run, and the
    default config is an information row that does not decide the exit status."""
    root = _tree(tmp_path)
    ivlp = METHOD_CFG + "_ivlp"
    _write(root, "DualPromptMI", ivlp, {1: (72.0, 74.0), 2: (73.0, 74.5), 3: (72.0, 73.5)},
           variants={"soft_only": {s: (66.0, 60.0) for s in SEEDS}, "hand_only": {s: (60.0, 75.0) for s in SEEDS}})
    values = per_config_values(root, "accuracy")
    compared = {label: (diff, is_target) for label, diff, is_target in targets.comparisons(values, ("DualPromptMI", ivlp))}
    assert compared["CoOp + ensemble"][1] is True
    assert compared["CoOp + ensemble"][0].differences[0] == pytest.approx(harmonic_mean(72.0, 74.0) - harmonic_mean(68.0, 71.0))
    assert compared[f"DualPromptMI {METHOD_CFG}"][1] is False
    result = run_cli(["benchmarks/targets.py", root, "--method", f"DualPromptMI={ivlp}"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"| vs DualPromptMI {METHOD_CFG} |" in result.stdout and "(information)" in result.stdout
