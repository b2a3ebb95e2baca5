"""The ablation runner (tools/ablation.py over tools/ablationlib/) and its paired statistics (clipprompt/results/paired.py).

No training: the aggregation reads results.json files written into the run folders the scripts
name, and the run loop goes through the real protocol scripts (by tools/gridlib.py's runner) with a
fake PYTHON that writes a results.json whose accuracy is a known function of the run's arguments.
"""

import json
import math
import os
import shutil
from pathlib import Path

import pytest

from clipprompt.results import paired
from clipprompt.errors import UserError
from conftest import HAVE_DASSL, REPO, requires_dassl, run_cli, write_fake_python
from helpers import write_synthetic_idx_root
from tools import ablation
from tools.ablationlib import aggregate as agg
from tools.ablationlib import plan as plans
from tools.ablationlib import report as rep
from tools.ablationlib import runs, stages

CFG = "vit_b16_c4_ep10_batch4_ctxv1"  # committed configs: the tests do not depend on the mini ones
DPMI_MI = "TRAINER.DUALPROMPTMI.MI.WEIGHT"


# --------------------------------------------------------------------------
# Paired statistics, against hand computations
# --------------------------------------------------------------------------


def test_paired_difference_unresolved_by_hand():
    # diffs 1, 2, 0.5: mean 7/6, sample var ((1/6)^2 + (5/6)^2 + (2/3)^2) / 2 = 7/12
    diff = paired.paired_difference({1: 70.0, 2: 72.0, 3: 71.0}, {1: 71.0, 2: 74.0, 3: 71.5})
    assert diff.seeds == (1, 2, 3)
    assert diff.differences == pytest.approx((1.0, 2.0, 0.5))
    assert diff.mean == pytest.approx(7 / 6)
    assert diff.std == pytest.approx(math.sqrt(7 / 12))
    assert diff.sem == pytest.approx(math.sqrt(7 / 12) / math.sqrt(3))
    half_width = 4.302653 * math.sqrt(7 / 12) / math.sqrt(3)  # t(0.975, 2)
    assert diff.ci_low == pytest.approx(7 / 6 - half_width, abs=1e-5)
    assert diff.ci_high == pytest.approx(7 / 6 + half_width, abs=1e-5)
    assert diff.verdict == paired.UNRESOLVED and not diff.resolved


def test_paired_difference_better_and_worse_by_hand():
    reference = {1: 60.0, 2: 62.0, 3: 61.0, 4: 63.0}
    candidate = {1: 61.0, 2: 63.2, 3: 61.8, 4: 64.0}  # diffs 1.0, 1.2, 0.8, 1.0
    better = paired.paired_difference(reference, candidate)
    std = math.sqrt(0.08 / 3)
    assert better.mean == pytest.approx(1.0)
    assert better.std == pytest.approx(std)
    assert better.ci_low == pytest.approx(1.0 - 3.182446 * std / 2, abs=1e-5)  # t(0.975, 3)
    assert better.ci_high == pytest.approx(1.0 + 3.182446 * std / 2, abs=1e-5)
    assert better.verdict == paired.BETTER
    worse = paired.paired_difference(candidate, reference)
    assert worse.mean == pytest.approx(-1.0)
    assert worse.verdict == paired.WORSE
    assert (worse.ci_low, worse.ci_high) == pytest.approx((-better.ci_high, -better.ci_low))


def test_paired_difference_uses_common_seeds_only():
    diff = paired.paired_difference({1: 50.0, 2: 52.0, 4: 99.0}, {1: 51.0, 2: 54.0, 5: 0.0})
    assert diff.seeds == (1, 2) and diff.n == 2
    assert diff.mean == pytest.approx(1.5)
    assert diff.std == pytest.approx(math.sqrt(0.5))
    record = diff.to_dict()
    assert record["n"] == 2 and record["verdict"] == paired.UNRESOLVED


def test_paired_difference_needs_two_seeds_for_an_interval():
    one = paired.paired_difference({1: 50.0}, {1: 55.0})
    assert one.mean == pytest.approx(5.0)
    assert one.std is None and one.ci_low is None and one.verdict == paired.UNRESOLVED
    none = paired.paired_difference({1: 50.0}, {2: 55.0})
    assert none.n == 0 and none.mean is None and none.verdict == paired.UNRESOLVED


def test_identical_runs_are_unresolved_and_constant_gain_is_resolved():
    values = {1: 70.0, 2: 75.0}
    assert paired.paired_difference(values, dict(values)).verdict == paired.UNRESOLVED
    shifted = {seed: value + 0.5 for seed, value in values.items()}
    diff = paired.paired_difference(values, shifted)
    assert diff.std == pytest.approx(0.0, abs=1e-12)
    assert diff.verdict == paired.BETTER


def test_per_seed_harmonic_mean_by_hand():
    hm = paired.per_seed_harmonic_mean({1: 80.0, 2: 90.0, 3: 70.0}, {1: 60.0, 2: 90.0, 4: 10.0})
    assert set(hm) == {1, 2}
    assert hm[1] == pytest.approx(2 * 80 * 60 / 140)
    assert hm[2] == pytest.approx(90.0)
    assert paired.per_seed_harmonic_mean({1: 0.0}, {1: 0.0}) == {1: 0.0}


def test_mean_and_std_is_the_sample_std():
    mean, std = paired.mean_and_std([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5)
    assert std == pytest.approx(math.sqrt(5 / 3))
    assert paired.mean_and_std([3.0]) == (3.0, None)
    assert paired.mean_and_std([]) == (None, None)


def test_t_quantiles_without_scipy_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in range(1, 31):
        assert paired.t_quantile_975_fallback(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-6)
    for df in (31, 45, 100, 1000):
        assert paired.t_quantile_975_fallback(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-4)
    assert paired.t_quantile_975(5) == pytest.approx(2.570582, abs=1e-6)
    with pytest.raises(ValueError):
        paired.t_quantile_975_fallback(0)


# --------------------------------------------------------------------------
# Plans
# --------------------------------------------------------------------------


def variant_entry(name, opts=(), trainer="DualPromptMI", cfg=CFG):
    return {"name": name, "trainer": trainer, "cfg": cfg, "opts": list(opts)}


FORMER_BUILTIN_PLANS = ("components", "mi_weight", "mi_mode", "aug", "infer_weight")


def test_named_plans_are_the_files_of_configs_ablation_and_name_existing_configs():
    named = plans.plan_files()
    assert set(FORMER_BUILTIN_PLANS) <= set(named)  # the names of the former built-in plans still work
    assert set(named) == {p.stem for p in Path(REPO, "configs", "ablation").iterdir() if p.suffix in (".py", ".json")}
    for name, path in named.items():
        parsed = plans.load_plan(name)
        assert parsed.source == f"configs/ablation/{path.name}"
        assert parsed.reference in [variant.name for variant in parsed.variants]
        for variant in parsed.variants:
            root = parsed.config_root or plans.DEFAULT_CONFIG_ROOT
            assert plans.trainer_config_path(Path(REPO), variant, root).is_file(), variant
    listing = plans.list_plans()
    assert all(line.split(":")[0] in named for line in listing.splitlines() if not line.startswith(" "))
    assert "components: what each DualPromptMI term adds" in listing and "peers_lr: " in listing


def test_a_plan_name_finds_its_file_in_the_plan_folder(tmp_path):
    (tmp_path / "mine.json").write_text(json.dumps({"reference": "a", "variants": [variant_entry("a")]}))
    (tmp_path / "both.json").write_text(json.dumps({"reference": "j", "variants": [variant_entry("j")]}))
    (tmp_path / "both.py").write_text("# comment\n{'reference': 'p', 'variants': [%r]}" % variant_entry("p"))
    assert plans.load_plan("mine", tmp_path).reference == "a"
    assert plans.load_plan("both", tmp_path).reference == "p"  # NAME.py before NAME.json
    with pytest.raises(UserError, match="named plans: both, mine"):
        plans.load_plan("nope", tmp_path)
    with pytest.raises(UserError, match="unknown key.*refrence"):
        plans.parse_plan({"refrence": "a", "variants": [variant_entry("a")]}, "p")


def test_plan_file_json_and_python_literal(tmp_path):
    plan = {"reference": "a", "variants": [variant_entry("a"), variant_entry("b", [DPMI_MI, 0.5])]}
    json_file = tmp_path / "plan.json"
    json_file.write_text(json.dumps(plan))
    parsed = plans.load_plan(str(json_file))
    assert parsed.reference == "a"
    assert parsed.variant("b").opts == (DPMI_MI, "0.5")  # numbers become yacs-readable strings
    literal = tmp_path / "plan.py"
    literal.write_text("# two variants\n" + repr(plan) + "  # trailing comment\n")
    assert plans.load_plan(str(literal)) == plans.Plan(parsed.variants, "a", str(literal))
    assert plans.load_plan("components").reference == "ensemble_only"


@pytest.mark.parametrize(
    "plan, message",
    [
        ({"variants": []}, "non-empty 'variants'"),
        ({"reference": "x", "variants": [variant_entry("a")]}, "reference 'x' is not one of the variants"),
        ({"reference": "a", "variants": [variant_entry("a"), variant_entry("A")]}, "would share a folder"),
        ({"reference": "a", "variants": [variant_entry("a"), variant_entry("a")]}, "would share a folder"),
        ({"reference": "a", "variants": [variant_entry("../a")]}, "must be a folder name"),
        ({"reference": "a", "variants": [variant_entry("a", [DPMI_MI])]}, "odd count"),
        ({"reference": "a", "variants": [variant_entry("a", ["mi.weight", "1"])]}, "is not a config key"),
        ({"reference": "a", "variants": [variant_entry("a", [DPMI_MI, "1.0", DPMI_MI, "2.0"])]}, "given twice"),
        ({"reference": "a", "variants": [{**variant_entry("a"), "opt": []}]}, "unknown key(s) opt"),
        ({"reference": "a", "variants": [{"name": "a", "trainer": "CoOp"}]}, "missing cfg"),
    ],
)
def test_bad_plans_are_one_line_errors(plan, message):
    with pytest.raises(UserError, match=None) as info:
        plans.parse_plan(plan, "p.json")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_plan_and_bad_config_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no plan of that name"):
        plans.load_plan(str(tmp_path / "missing.json"))
    settings = plans.Settings(tmp_path, "data", 16, (1,))
    plan = plans.parse_plan({"reference": "a", "variants": [variant_entry("a", cfg="no_such_cfg")]}, "p")
    with pytest.raises(UserError, match="no_such_cfg.yaml not found"):
        plans.check_configs(plan, "oxford_pets", settings)
    with pytest.raises(UserError, match="--dataset nope"):
        plans.check_configs(plan, "nope", settings)
    clash = plans.Settings(tmp_path, "data", 16, (1,), extra=(DPMI_MI, "0.0"))
    plan = plans.parse_plan({"reference": "a", "variants": [variant_entry("a", [DPMI_MI, "1.0"])]}, "p")
    with pytest.raises(UserError, match="both set"):
        plans.check_configs(plan, "oxford_pets", clash)


@requires_dassl
def test_config_values_are_checked_before_any_run(tmp_path):
    settings = plans.Settings(tmp_path, "data", 16, (1,))
    plan = plans.parse_plan({"reference": "a", "variants": [variant_entry("a", [DPMI_MI, "0"])]}, "p")
    with pytest.raises(UserError, match="variant 'a'.*Type mismatch"):
        plans.check_configs(plan, "oxford_pets", settings)
    typo = plans.parse_plan({"reference": "a", "variants": [variant_entry("a", ["TRAINER.DUALPROMPTMI.MI.WEIHGT", "0.0"])]}, "p")
    with pytest.raises(UserError, match="variant 'a'"):
        plans.check_configs(typo, "oxford_pets", settings)


# --------------------------------------------------------------------------
# Command lines and output roots
# --------------------------------------------------------------------------


def test_jobs_call_the_protocol_scripts_with_the_variant_settings(tmp_path):
    settings = plans.Settings(tmp_path / "out", str(tmp_path / "data"), 8, (3,),
                              extra=("MODEL.BACKBONE.PATH", "/m/clip.pt"), python="/usr/bin/python3")
    variant = plans.Variant("no_mi", "DualPromptMI", CFG, (DPMI_MI, "0.0"))
    job = stages.build_job(variant, 3, stages.real_stage("oxford_pets"), settings)
    out = (tmp_path / "out").resolve()
    train, test = job.steps
    assert (train.script, test.script) == ("base2new_train.sh", "base2new_test.sh")
    assert train.args == test.args == ("oxford_pets", "3")
    assert job.opts == (DPMI_MI, "0.0", "MODEL.BACKBONE.PATH", "/m/clip.pt")
    assert job.env["TRAINER"] == "DualPromptMI" and job.env["CFG"] == CFG
    assert job.env["SHOTS"] == "8" and job.env["PYTHON"] == "/usr/bin/python3"
    assert job.env["DATA"] == str((tmp_path / "data").resolve())
    assert job.env["OUTPUT"] == str(out / "real" / "no_mi")
    assert not job.resume  # an unfinished run starts afresh, its folder moved aside
    # the folders the scripts name (RUN_DIR_ONLY=1) under the variant's own OUTPUT
    assert train.run_dir == out / "real/no_mi/base2new/train_base/oxford_pets/shots_8/DualPromptMI" / CFG / "seed3"
    assert test.run_dir == out / "real/no_mi/base2new/test_new/oxford_pets/shots_8/DualPromptMI" / CFG / "seed3"
    assert job.log == out / "logs" / "real" / "no_mi" / "oxford_pets_shots8_seed3.log"


def test_variants_sharing_a_config_never_share_a_folder(tmp_path):
    plan = plans.load_plan("mi_weight")  # one config, options differ
    settings = plans.Settings(tmp_path, "data", 16, (1, 2), config_root=plan.config_root)
    assert len({variant.cfg for variant in plan.variants}) == 1
    # The pseudo splits of two datasets are both "custom" to the scripts: their stages keep them apart.
    all_stages = [stages.real_stage("fashion_mnist"), stages.real_stage("oxford_pets"),
                  stages.pseudo_stage("fashion_mnist", settings, write=False),
                  stages.pseudo_stage("oxford_pets", settings, write=False)]
    assert all_stages[2].dataset == all_stages[3].dataset == "custom"
    folders, logs = set(), set()
    for stage in all_stages:
        for job in stages.stage_jobs(list(plan.variants), stage, settings):
            folders |= {str(step.run_dir).lower() for step in job.steps}  # also distinct on case-insensitive file systems
            logs.add(str(job.log).lower())
    assert len(folders) == len(all_stages) * len(plan.variants) * len(settings.seeds) * 2
    assert len(logs) == len(all_stages) * len(plan.variants) * len(settings.seeds)
    roots = {str(stages.variant_root(tmp_path, "real", variant.name)) for variant in plan.variants}
    assert not any(a != b and b.startswith(a + os.sep) for a in roots for b in roots)


def test_pseudo_stage_options_yield_to_the_trainer_config(tmp_path):
    stage = stages.Stage("pseudo", "custom", "pseudo", ("DATASET.CUSTOM.SPLIT_FILE", "/s.json"),
                           inherited=(("INPUT.SIZE", "(32, 32)"), ("INPUT.NO_SUCH_IN_TRAINER_CFG", "1")))
    variant = plans.Variant("a", "DualPromptMI", CFG)  # its config sets INPUT.SIZE
    assert stage.opts_for(variant) == ["DATASET.CUSTOM.SPLIT_FILE", "/s.json", "INPUT.NO_SUCH_IN_TRAINER_CFG", "1"]
    assert stages.real_stage("x").opts_for(variant) == []


# --------------------------------------------------------------------------
# Aggregation from a hand-written output tree
# --------------------------------------------------------------------------


def write_result(settings, plan, name, half, seed, accuracy, soft=None):
    """A results.json where the scripts put the run of ``name``'s ``half`` (real split of oxford_pets)."""
    variant = plan.variant(name)
    job = stages.build_job(variant, seed, stages.real_stage("oxford_pets"), settings)
    path = job.steps[0 if half == "base" else 1].run_dir
    path.mkdir(parents=True, exist_ok=True)
    record = {"trainer": variant.trainer, "dataset": "OxfordPets", "subsample": half, "seed": seed,
              "shots": settings.shots, "config": variant.cfg, "accuracy": accuracy}
    if soft is not None:
        record["variants"] = {"soft_only": {"accuracy": soft}}
    (path / "results.json").write_text(json.dumps(record))


def three_variant_plan():
    return plans.parse_plan(
        {"reference": "ref", "variants": [variant_entry("ref", [DPMI_MI, "0.0"]),  # same config as "full"
                                          variant_entry("full"), variant_entry("coop", trainer="CoOp", cfg="vit_b16_ctxv1")]},
        "test",
    )


def test_aggregate_means_and_paired_differences(tmp_path):
    plan = three_variant_plan()
    settings = plans.Settings(tmp_path, "data", 16, (1, 2, 3))
    ref_base, ref_new = {1: 80.0, 2: 82.0, 3: 81.0}, {1: 60.0, 2: 64.0, 3: 62.0}
    full_base, full_new = {1: 81.0, 2: 83.0, 3: 82.0}, {1: 62.0, 2: 65.0, 3: 64.5}
    for seed in (1, 2, 3):
        write_result(settings, plan, "ref", "base", seed, ref_base[seed], soft=ref_base[seed] - 1)
        write_result(settings, plan, "ref", "new", seed, ref_new[seed], soft=ref_new[seed] - 5)
        write_result(settings, plan, "full", "base", seed, full_base[seed], soft=full_base[seed] - 1)
        write_result(settings, plan, "full", "new", seed, full_new[seed], soft=full_new[seed] - 3)
        write_result(settings, plan, "coop", "base", seed, 83.0 + seed)
    write_result(settings, plan, "coop", "new", 1, 55.0)  # seeds 2, 3: base only
    stage = stages.real_stage("oxford_pets")
    table = agg.aggregate(plan, list(plan.variants), stage, settings, "accuracy")

    results = {result.variant.name: result for result in table.results}
    assert results["ref"].seeds == (1, 2, 3)
    assert results["ref"].stats("base") == pytest.approx((81.0, 1.0))
    assert results["ref"].stats("new") == pytest.approx((62.0, 2.0))
    hm = [2 * b * n / (b + n) for b, n in zip(ref_base.values(), ref_new.values())]
    assert results["ref"].stats("hm") == pytest.approx(paired.mean_and_std(hm))
    assert results["coop"].seeds == (1,) and results["coop"].incomplete == {2: "new", 3: "new"}
    assert any("coop, seed 2: new half missing" in note for note in table.notes)

    diff = table.differences["full"]
    assert diff["base"].mean == pytest.approx(1.0) and diff["base"].std == pytest.approx(0.0, abs=1e-9)
    assert diff["base"].verdict == paired.BETTER
    assert diff["new"].differences == pytest.approx((2.0, 1.0, 2.5))
    full_hm = [2 * b * n / (b + n) for b, n in zip(full_base.values(), full_new.values())]
    assert diff["hm"].differences == pytest.approx(tuple(f - r for f, r in zip(full_hm, hm)))
    assert "ref" not in table.differences and table.differences["coop"]["hm"].n == 1

    soft = agg.aggregate(plan, list(plan.variants), stage, settings, "variants.soft_only.accuracy")
    assert [result.variant.name for result in soft.results] == ["ref", "full"]  # CoOp reports no soft_only
    assert soft.differences["full"]["new"].mean == pytest.approx((2.0 + 1.0 + 2.5) / 3 + 2.0)

    selection = agg.select_best(table, "hm")
    assert selection.best == "full" and selection.versus_reference is diff["hm"]
    assert "vs the reference ref" in selection.text
    assert agg.select_best(table, "base").best == "coop"  # 84.0 on its one complete seed
    assert "different seeds" in agg.select_best(table, "base").text


def test_report_writes_markdown_csv_and_json(tmp_path, capsys):
    plan = three_variant_plan()
    settings = plans.Settings(tmp_path, "data", 16, (1, 2))
    for seed in (1, 2):
        for name, gain in (("ref", 0.0), ("full", 2.0 + seed / 10)):
            write_result(settings, plan, name, "base", seed, 80.0 + seed + gain, soft=70.0)
            write_result(settings, plan, name, "new", seed, 60.0 + seed + gain, soft=50.0 + gain)
    tables, selection = rep.report(plan, list(plan.variants), stages.real_stage("oxford_pets"), settings,
                                        "hm", "Ablation test", "ablation_real")
    printed = capsys.readouterr().out
    assert "| full" in printed and "(reference)" in printed and "Selection: best mean HM" in printed
    assert [table.metric for table in tables] == ["accuracy", "variants.soft_only.accuracy"]
    assert selection.best == "full"
    markdown = (tmp_path / "ablation_real.md").read_text()
    assert "[+" in markdown and "better" in markdown  # +2.1, +2.2 on both halves: resolved
    rows = (tmp_path / "ablation_real.csv").read_text().splitlines()
    assert rows[0].startswith("stage,dataset,metric,variant")
    full_row = next(row.split(",") for row in rows if ",accuracy,full," in row)
    header = rows[0].split(",")
    assert float(full_row[header.index("diff_base_mean")]) == pytest.approx(2.15)
    assert full_row[header.index("diff_base_verdict")] == "better"
    record = json.loads((tmp_path / "ablation_real.json").read_text())
    assert record["selection"]["best"] == "full"
    assert record["tables"][0]["variants"]["ref"]["base"] == {"1": 81.0, "2": 82.0}
    assert record["tables"][0]["differences"]["full"]["new"]["n"] == 2


# --------------------------------------------------------------------------
# The run loop through the real scripts, with a fake train.py interpreter
# --------------------------------------------------------------------------

FAKE_TRAIN = '''
import json, os, sys
args = sys.argv[2:]  # after "train.py"
value = lambda flag: args[args.index(flag) + 1]
out, seed = value("--output-dir"), int(value("--seed"))
opts = dict(zip(args[args.index("DATASET.NUM_SHOTS"):][0::2], args[args.index("DATASET.NUM_SHOTS"):][1::2]))
with open(os.environ["FAKE_COUNTER"], "a") as f:
    f.write(" ".join(args) + "\\n")
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "log.txt"), "w").close()  # as train.py: a failed run leaves its folder
weight = float(opts.get("TRAINER.DUALPROMPTMI.MI.WEIGHT", "0"))
if weight < 0:
    print("error: a negative MI weight", file=sys.stderr)
    sys.exit(2)
half = opts["DATASET.SUBSAMPLE_CLASSES"]
pseudo = "custom.yaml" in value("--dataset-config-file")
accuracy = (70.0 if half == "base" else 50.0) + seed + 2 * weight + (10.0 if pseudo else 0.0) + (seed % 2) * weight
os.makedirs(out, exist_ok=True)
record = {"trainer": value("--trainer"), "dataset": "X", "subsample": half, "seed": seed, "accuracy": accuracy,
          "variants": {"soft_only": {"accuracy": accuracy - 1}}}
json.dump(record, open(os.path.join(out, "results.json"), "w"))
'''


@pytest.fixture()
def fake_python(tmp_path, monkeypatch):
    wrapper = write_fake_python(tmp_path, FAKE_TRAIN)
    counter = tmp_path / "calls.txt"
    counter.touch()
    monkeypatch.setenv("FAKE_COUNTER", str(counter))
    return str(wrapper), counter


def write_plan(tmp_path, variants, reference="ref"):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"reference": reference, "variants": variants}))
    return str(path)


def test_run_loop_resumes_and_reports_failures(tmp_path, fake_python, capsys):
    python, counter = fake_python
    plan = write_plan(tmp_path, [variant_entry("ref", [DPMI_MI, "0.0"]), variant_entry("mi", [DPMI_MI, "1.0"]),
                                 variant_entry("broken", [DPMI_MI, "-1.0"])])
    out = tmp_path / "out"
    argv = ["--plan", plan, "--dataset", "oxford_pets", "--data", str(tmp_path), "--out", str(out),
            "--seeds", "1", "2", "3", "--jobs", "2", "--python", python, "--select-by", "hm"]
    assert ablation.main(argv) == 1  # "broken" fails, the others finish
    captured = capsys.readouterr()
    calls = counter.read_text().splitlines()
    assert len(calls) == 3 * 2 + 3 * 2 + 3  # ref and mi: train + test; broken: train only
    log = out / "logs" / "real" / "broken" / "oxford_pets_shots16_seed1.log"
    assert (f"FAILED: broken seed 1 (real): scripts/base2new_train.sh oxford_pets 1: exit status 2 "
            f"(error: a negative MI weight); log: {log}") in captured.err
    assert "wall time:" in captured.out and "6 made" in captured.out
    assert "best mean HM (accuracy, on real): mi" in captured.out
    record = json.loads((out / "ablation_oxford_pets.json").read_text())
    diff = record["tables"][0]["differences"]["mi"]["base"]
    assert diff["differences"] == pytest.approx([3.0, 2.0, 3.0]) and diff["verdict"] == "better"
    manifest = json.loads((out / runs.MANIFEST_NAME).read_text())
    record = manifest["variants"]["mi"]
    assert {key: record[key] for key in ("trainer", "cfg", "opts")} == {"trainer": "DualPromptMI", "cfg": CFG,
                                                                        "opts": [DPMI_MI, "1.0"]}
    fingerprints = record["config_sha256"]
    assert set(fingerprints) == ({plans.OWN_CONFIG, plans.DASSL_CONFIG} if HAVE_DASSL else {plans.OWN_CONFIG})
    assert fingerprints != manifest["variants"]["ref"]["config_sha256"]  # the options differ
    assert "real/oxford_pets" in manifest["stages"] and manifest["shared"]["extra"] == []
    # Each variant's runs lie under its own root, in the scripts' layout.
    assert (out / "real/mi/base2new/test_new/oxford_pets/shots_16/DualPromptMI" / CFG / "seed3/results.json").is_file()

    # Again: finished runs are reused; the failed ones are moved aside and retried.
    assert ablation.main(argv) == 1
    captured = capsys.readouterr()
    assert len(counter.read_text().splitlines()) == len(calls) + 3
    assert "ablation real: 9 job(s): 6 finished before (skipped), 3 to run" in captured.out
    assert "6 reused" in captured.out
    assert "# moved the unfinished run" in log.read_text()
    assert list((out / "real/broken/base2new/train_base/oxford_pets/shots_16/DualPromptMI" / CFG).glob("seed1.old-*"))


def test_changed_variant_definition_is_refused(tmp_path, fake_python, capsys):
    python, _ = fake_python
    out = tmp_path / "out"
    common = ["--dataset", "oxford_pets", "--data", str(tmp_path), "--out", str(out), "--seeds", "1", "--python", python]
    assert ablation.main(["--plan", write_plan(tmp_path, [variant_entry("ref")]), *common]) == 0
    with pytest.raises(UserError, match="variant 'ref' in .* was"):
        ablation.main(["--plan", write_plan(tmp_path, [variant_entry("ref", [DPMI_MI, "0.5"])]), *common])
    with pytest.raises(UserError, match="extra"):
        ablation.main(["--plan", write_plan(tmp_path, [variant_entry("ref")]), *common, "--extra", "OPTIM.LR", "0.1"])


def test_cli_errors_are_one_line(tmp_path):
    result = run_cli(["-m", "tools.ablation", "--plan", "nope", "--dataset", "oxford_pets", "--out", str(tmp_path)])
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --plan nope") and "Traceback" not in result.stderr
    result = run_cli(["-m", "tools.ablation", "--plan", "components", "--dataset", "x", "--out", str(tmp_path),
                      "--extra", "MODEL.BACKBONE.PATH"])
    assert result.returncode == 2 and "odd count" in result.stderr


@requires_dassl
def test_pseudo_split_selection_then_real_split(tmp_path, pets_root, fake_python, capsys):
    python, counter = fake_python
    plan = write_plan(tmp_path, [variant_entry("ref", [DPMI_MI, "0.0"]), variant_entry("mi_small", [DPMI_MI, "0.5"]),
                                 variant_entry("mi_big", [DPMI_MI, "2.0"])])
    out = tmp_path / "out"
    argv = ["--plan", plan, "--dataset", "oxford_pets", "--data", pets_root, "--out", str(out), "--seeds", "1", "2",
            "--jobs", "1", "--python", python, "--pseudo", "--select-by", "hm"]
    assert ablation.main(argv) == 0
    printed = capsys.readouterr().out

    # The pseudo split: the 4 base classes of the 7 (labels 0-3), every split, paths relative to the images.
    split = json.loads((out / "pseudo_split" / "oxford_pets_base_classes.json").read_text())
    assert {entry[1] for entry in split["train"]} == {0, 1, 2, 3}
    assert {entry[2] for entry in split["test"]} == {"abyssinian", "beagle", "boxer", "chihuahua"}
    assert all(os.path.isfile(os.path.join(pets_root, "oxford_pets", "images", entry[0])) for entry in split["val"])

    calls = counter.read_text().splitlines()
    pseudo_calls = [call for call in calls if "custom.yaml" in call]
    assert len(pseudo_calls) == 3 * 2 * 2 and all("DATASET.CUSTOM.SPLIT_FILE" in call for call in pseudo_calls)
    assert all("oxford_pets.yaml" in call for call in calls if call not in pseudo_calls)
    # Only the reference and the choice run on the real split, after the choice.
    assert len(calls) - len(pseudo_calls) == 2 * 2 * 2
    assert "best mean HM (accuracy, on pseudo_oxford_pets): mi_big" in printed
    assert "After the choice: mi_big on the real split of oxford_pets" in printed
    real = json.loads((out / "ablation_oxford_pets_after_choice.json").read_text())
    assert set(real["tables"][0]["variants"]) == {"ref", "mi_big"}
    assert real["tables"][0]["variants"]["ref"]["base"] == {"1": 71.0, "2": 72.0}  # no pseudo bonus
    pseudo = json.loads((out / "ablation_oxford_pets_pseudo.json").read_text())
    assert pseudo["tables"][0]["variants"]["ref"]["base"] == {"1": 81.0, "2": 82.0}
    assert pseudo["selection"]["best"] == "mi_big"


@requires_dassl
def test_pseudo_split_of_the_colour_benchmark_from_its_config_root(tmp_path, fake_python, monkeypatch, capsys):
    """fashion_colours with the benchmark configs: the pseudo split holds the 30 base classes only."""
    from benchmarks import fashion_colours as fc
    from benchmarks.fashion_mnist import idx as fm_idx

    monkeypatch.setattr(fm_idx, "SYSTEM_IDX_DIR", str(tmp_path / "no_system_copy"))
    data = tmp_path / "data"
    write_synthetic_idx_root(str(data / "fashion_mnist"), train_per_class=1, test_per_class=60)
    python, counter = fake_python
    plan = write_plan(tmp_path, [
        {"name": "ref", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1_ensemble_only"},
        {"name": "coop", "trainer": "CoOp", "cfg": "mini_c4_ep20_batch8_ctxv1"}])
    out = tmp_path / "out"
    argv = ["--plan", plan, "--dataset", "fashion_colours", "--data", str(data), "--out", str(out),
            "--seeds", "1", "2", "--jobs", "1", "--python", python, "--pseudo", "--select-by", "hm", "--no-confirm",
            "--config-root", "benchmarks/configs/trainers"]
    assert ablation.main(argv) == 0
    split = json.loads((out / "pseudo_split" / "fashion_colours_base_classes.json").read_text())
    for rows in split.values():
        assert {entry[2] for entry in rows} == set(fc.CLASSNAMES[:30])
        assert {entry[1] for entry in rows} == set(range(30))
    calls = counter.read_text().splitlines()
    assert len(calls) == 2 * 2 * 2
    assert all(os.path.join("benchmarks", "configs", "trainers") in call for call in calls)
    # the pseudo split keeps the source's prompt ensemble, so "dataset_ensemble" means the same there
    assert all("DATASET.CUSTOM.ENSEMBLE_TEMPLATES" in call and "a bright photo of a {}." in call for call in calls)
    manifest = json.loads((out / runs.MANIFEST_NAME).read_text())
    assert manifest["shared"]["config_root"] == "benchmarks/configs/trainers"
    other_root = tmp_path / "other_configs"  # the same configs in another folder
    shutil.copytree(os.path.join("benchmarks", "configs", "trainers"), other_root)
    with pytest.raises(UserError, match="config_root"):  # the same --out with another config root is refused
        ablation.main([*argv[:-1], str(other_root)])


@requires_dassl
def test_word_disjoint_pseudo_split_of_the_colour_benchmark(tmp_path, fake_python, monkeypatch, capsys):
    """--pseudo-split word_disjoint: the split file holds 13 base classes, pseudo-base labels first,
    and no pseudo-new class name shares a word with a pseudo-base one."""
    from benchmarks import fashion_colours as fc
    from benchmarks.fashion_mnist import idx as fm_idx
    from tools.ablationlib.wordsplit import class_words

    monkeypatch.setattr(fm_idx, "SYSTEM_IDX_DIR", str(tmp_path / "no_system_copy"))
    data = tmp_path / "data"
    write_synthetic_idx_root(str(data / "fashion_mnist"), train_per_class=1, test_per_class=60)
    python, counter = fake_python
    plan = write_plan(tmp_path, [
        {"name": "ref", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1_ensemble_only"},
        {"name": "coop", "trainer": "CoOp", "cfg": "mini_c4_ep20_batch8_ctxv1"}])
    out = tmp_path / "out"
    argv = ["--plan", plan, "--dataset", "fashion_colours", "--data", str(data), "--out", str(out),
            "--seeds", "1", "--jobs", "1", "--python", python, "--pseudo", "--pseudo-split", "word_disjoint",
            "--select-by", "hm", "--no-confirm", "--config-root", "benchmarks/configs/trainers"]
    assert ablation.main(argv) == 0
    split = json.loads((out / "pseudo_split" / "fashion_colours_base_classes_word_disjoint.json").read_text())
    names = {entry[1]: entry[2] for entry in split["train"]}
    assert sorted(names) == list(range(13)) and set(names.values()) <= set(fc.CLASSNAMES[:30])
    base_words = set().union(*(class_words(names[label]) for label in range(7)))  # the protocol's base half
    new_words = set().union(*(class_words(names[label]) for label in range(7, 13)))
    assert base_words.isdisjoint(new_words)
    assert {entry[1] for entry in split["test"]} == set(range(13))  # scored on the base classes' val images
    calls = counter.read_text().splitlines()
    assert len(calls) == 2 * 2 and all("fashion_colours_base_classes_word_disjoint.json" in call for call in calls)
    assert (out / "ablation_fashion_colours_pseudo_word_disjoint.json").is_file()
    assert (out / "pseudowd_fashion_colours").is_dir()
    assert "word-disjoint pseudo split" in capsys.readouterr().out


def test_pseudo_split_option_without_pseudo_is_refused(tmp_path, pets_root):
    with pytest.raises(UserError, match="--pseudo-split needs --pseudo"):
        ablation.main(["--plan", "components", "--dataset", "oxford_pets", "--data", pets_root, "--out",
                       str(tmp_path / "out"), "--seeds", "1", "--pseudo-split", "word_disjoint", "--dry-run"])


# --------------------------------------------------------------------------
# Defects of issue 15: a YAML syntax error, --pseudo without Dassl, a changed effective config
# --------------------------------------------------------------------------


def copy_config_root(tmp_path):
    """The committed DualPromptMI config in a folder of its own (--config-root), to edit."""
    root = tmp_path / "trainer_configs"
    (root / "DualPromptMI").mkdir(parents=True)
    shutil.copy(Path(REPO, "configs", "trainers", "DualPromptMI", f"{CFG}.yaml"), root / "DualPromptMI")
    return root, root / "DualPromptMI" / f"{CFG}.yaml"


def test_yaml_syntax_error_in_a_trainer_config_is_one_line_naming_file_and_line(tmp_path):
    root, config = copy_config_root(tmp_path)
    text = config.read_text()
    config.write_text(text + "OPTIM_TYPO:\n\tLR: 0.1\n")  # a tab cannot indent YAML
    bad_line = len(text.splitlines()) + 2
    result = run_cli(["-m", "tools.ablation", "--plan", write_plan(tmp_path, [variant_entry("ref")]), "--dataset",
                      "oxford_pets", "--out", str(tmp_path / "out"), "--config-root", str(root), "--no-run"])
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {config}, line {bad_line}: found character '\\t'")


def test_load_yaml_names_the_line_of_a_syntax_error(tmp_path):
    from clipprompt.runtime.yamlfile import load_yaml, load_yaml_mapping

    path = tmp_path / "c.yaml"
    path.write_text('OPTIM:\n  LR: 0.002\n  NAME: "sgd\n  MAX_EPOCH: 2\n')  # a quote that never closes
    with pytest.raises(UserError) as info:
        load_yaml(path)
    assert str(info.value) == (f"{path}, line 5: found unexpected end of stream "
                               "(while scanning a quoted scalar from line 3)")
    path.write_text("- a\n- b\n")
    assert load_yaml(path) == ["a", "b"]
    with pytest.raises(UserError, match="expected KEY: value pairs at the top, found a list"):
        load_yaml_mapping(path)
    with pytest.raises(UserError, match="cannot read it"):
        load_yaml(tmp_path / "missing.yaml")


def test_pseudo_without_dassl_is_one_line_saying_how_to_install_it(tmp_path, pets_root):
    shim = tmp_path / "no_dassl" / "dassl"  # first on PYTHONPATH: "import dassl" fails as if not installed
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError(\"No module named 'dassl' (hidden by the test)\")\n")
    path = os.pathsep.join(p for p in (str(shim.parent), os.environ.get("PYTHONPATH", "")) if p)
    result = run_cli(["-m", "tools.ablation", "--plan", write_plan(tmp_path, [variant_entry("ref")]), "--dataset",
                      "oxford_pets", "--data", pets_root, "--out", str(tmp_path / "out"), "--seeds", "1", "--pseudo"],
                     env_extra={"PYTHONPATH": path})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: --pseudo needs Dassl")
    assert "bash scripts/install_dassl.sh" in result.stderr and "DASSL_SRC=" in result.stderr


def test_a_changed_default_or_trainer_yaml_is_refused_not_reused(tmp_path, fake_python, monkeypatch):
    import clipprompt.config

    python, counter = fake_python
    root, config = copy_config_root(tmp_path)
    plan = write_plan(tmp_path, [variant_entry("ref"), variant_entry("mi", [DPMI_MI, "1.0"])])
    argv = ["--plan", plan, "--dataset", "oxford_pets", "--data", str(tmp_path), "--out", str(tmp_path / "out"),
            "--seeds", "1", "--python", python, "--config-root", str(root)]
    assert ablation.main(argv) == 0 and ablation.main(argv) == 0  # the second time: nothing changed, all reused
    runs_made = len(counter.read_text().splitlines())
    assert runs_made == 2 * 2
    original = clipprompt.config.extend_cfg

    def with_default(key, value):
        def extend(cfg):
            original(cfg)
            setattr(cfg.TRAINER.DUALPROMPTMI.AUG, key, value)
            return cfg
        return extend

    # A default the trainer YAML sets leaves the effective config as it was: the runs are reused.
    monkeypatch.setattr(clipprompt.config, "extend_cfg", with_default("WEIGHT", 0.5))
    assert ablation.main(argv) == 0
    # A default it does not set changes what the runs would be.
    monkeypatch.setattr(clipprompt.config, "extend_cfg", with_default("ALPHA", 0.5))
    with pytest.raises(UserError) as info:
        ablation.main(argv)
    message = str(info.value)
    assert message.startswith("variant 'ref': its effective config changed") and "\n" not in message
    assert "TRAINER.DUALPROMPTMI.AUG.ALPHA: 1.0 -> 0.5" in message and "use a new --out" in message
    monkeypatch.setattr(clipprompt.config, "extend_cfg", original)
    # So does an edit of the trainer YAML.
    config.write_text(config.read_text().replace("LR: 0.002", "LR: 0.004"))
    with pytest.raises(UserError, match=r"variant 'ref': its effective config changed .*OPTIM\.LR: 0\.002 -> 0\.004"):
        ablation.main(argv)
    assert len(counter.read_text().splitlines()) == runs_made  # nothing was reused silently, nothing rerun
