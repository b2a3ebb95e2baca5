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
    result = run_cli(["-m", "benchmarks.targets", root])
    assert result.returncode == 1, result.stderr
    assert "| 2 | 71.00 / 73.50 | 59.50 / 60.00 | 60.00 / 75.00 | 60.00 | NO (collapse) |" in result.stdout
    assert "soft view below zero-shot base on seed(s) 2" in result.stdout


def test_all_targets_met_exits_zero(tmp_path):
    root = _tree(tmp_path)
    result = run_cli(["-m", "benchmarks.targets", root])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "targets: met" in result.stdout


def test_the_default_method_is_the_published_schedules_run_when_the_folder_holds_it(tmp_path):
    root = _tree(tmp_path)  # the quick mode's runs only: its method is judged
    assert "Targets of DualPromptMI (mini_c4_ep20_batch8_ctxv1)" in run_cli(["-m", "benchmarks.targets", root]).stdout
    published = "mini_published_c4_ep10_batch4_ctxv1"
    _write(root, "DualPromptMI", published, {1: (60.0, 60.0), 2: (61.0, 61.0), 3: (60.0, 60.0)},
           variants={"soft_only": {s: (61.0, 60.0) for s in SEEDS}, "hand_only": {s: (60.0, 75.0) for s in SEEDS}})
    result = run_cli(["-m", "benchmarks.targets", root])
    assert f"Targets of DualPromptMI ({published})" in result.stdout and result.returncode == 1  # below KgCoOp


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
    result = run_cli(["-m", "benchmarks.targets", root, "--method", f"DualPromptMI={ivlp}"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"| vs DualPromptMI {METHOD_CFG} |" in result.stdout and "(information)" in result.stdout


# ----- each benchmark's own rule -------------------------------------------------------------

def _fashion10_like(root, dataset):
    """DualPromptMI a little below CoOp on average, unresolved (as on fashion10: -1.00 [-2.74, +0.74]),
    and resolved above the other baselines."""
    def write(trainer, config, by_seed, variants=None):
        _write(root, trainer, config, by_seed, variants)
        for path, _, files in os.walk(root):  # the same numbers, under the dataset asked for
            for name in files:
                record = json.load(open(os.path.join(path, name)))
                record["dataset"] = dataset
                json.dump(record, open(os.path.join(path, name), "w"))

    write("ZeroshotCLIP", "mini", {s: (60.0, 75.0) for s in SEEDS})
    write("CoOp", METHOD_CFG, {1: (80.0, 74.0), 2: (79.0, 72.0), 3: (81.0, 73.0)})
    write("KgCoOp", METHOD_CFG, {1: (70.0, 71.0), 2: (70.0, 70.0), 3: (68.0, 70.0)})
    write("DualPromptMI", METHOD_CFG + "_ensemble_only", {1: (70.0, 70.0), 2: (69.0, 71.0), 3: (67.5, 70.0)})
    write("DualPromptMI", METHOD_CFG, {1: (80.0, 72.0), 2: (79.5, 73.0), 3: (79.0, 71.0)},
          variants={"soft_only": {s: (70.0, 60.0) for s in SEEDS}, "hand_only": {s: (60.0, 75.0) for s in SEEDS}})
    return str(root)


def test_fashion10_is_judged_not_below_and_fashion_colours_above(tmp_path):
    fashion10 = _fashion10_like(tmp_path / "f10", "FashionMNIST")
    coop = {label: diff for label, diff, _ in targets.comparisons(per_config_values(fashion10, "accuracy"),
                                                                  ("DualPromptMI", METHOD_CFG))}["CoOp"]
    assert coop.mean < 0 < coop.ci_high  # below by the mean, not resolved below
    assert targets.target_met(coop, targets.NOT_BELOW) and not targets.target_met(coop, targets.ABOVE)

    met = run_cli(["-m", "benchmarks.targets", fashion10])
    assert met.returncode == 0, met.stdout + met.stderr
    assert "rule (fashion10): not below the best bundled trainer" in met.stdout
    assert "| target (interval reaches 0) |" in met.stdout
    assert "targets: met (fashion10 rule: not below)" in met.stdout

    # the same numbers on fashion_colours, or under its rule, are not met
    colours = _fashion10_like(tmp_path / "fc", "FashionColours")
    for argv in ([colours], [fashion10, "--benchmark", "fashion_colours"]):
        missed = run_cli(["-m", "benchmarks.targets", *argv])
        assert missed.returncode == 1, missed.stdout + missed.stderr
        assert "rule (fashion_colours): above every bundled trainer, resolved" in missed.stdout
        assert "targets: NOT met (fashion_colours rule: above; HM not resolved above CoOp)" in missed.stdout


def test_fashion10_target_is_missed_when_resolved_below(tmp_path):
    root = _fashion10_like(tmp_path, "FashionMNIST")
    _write(root, "CoOp", METHOD_CFG, {1: (90.0, 80.0), 2: (91.0, 81.0), 3: (90.0, 80.5)})
    for path, _, files in os.walk(root):
        for name in files:
            record = json.load(open(os.path.join(path, name)))
            json.dump(dict(record, dataset="FashionMNIST"), open(os.path.join(path, name), "w"))
    result = run_cli(["-m", "benchmarks.targets", root])
    assert result.returncode == 1
    assert "targets: NOT met (fashion10 rule: not below; HM resolved below CoOp)" in result.stdout


def test_results_of_another_dataset_need_the_benchmark_named(tmp_path):
    root = _fashion10_like(tmp_path, "OxfordPets")
    result = run_cli(["-m", "benchmarks.targets", root])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"error: {root}: cannot tell the benchmark from the dataset (OxfordPets); "
                                     "pass --benchmark fashion10 or --benchmark fashion_colours to choose its target rule")
    assert run_cli(["-m", "benchmarks.targets", root, "--benchmark", "fashion10"]).returncode == 0
