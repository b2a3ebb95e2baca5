"""The whole CPU benchmark path in miniature: pretraining, dataset, scripts, aggregation, plot."""

import csv
import glob
import json
import os

import pytest

from conftest import requires_dassl, run_cli


EXPECTED = {  # SCHEDULE=published, the default
    ("ZeroshotCLIP", "mini"),
    ("CoOp", "mini_published_ep200_batch32_ctxv1"),
    ("CoCoOp", "mini_published_c4_ep10_batch1_ctxv1"),
    ("KgCoOp", "mini_published_c4_ep100_batch128_ctxv1"),
    ("ProGrad", "mini_published_c4_ep100_batch32_ctxv1"),
    ("MaPLe", "mini_published_c2_ep5_batch4_2ctx"),
    ("PromptSRC", "mini_published_c2_ep20_batch4_4+4ctx"),
    ("DualPromptMI", "mini_published_c4_ep10_batch4_ctxv1"),
    ("DualPromptMI", "mini_published_c2_ep20_batch4_4+4ctx_promptsrc"),
}
EXPECTED_QUICK_MODE = {  # SCHEDULE=mini
    ("ZeroshotCLIP", "mini"),
    ("CoOp", "mini_c4_ep20_batch8_ctxv1"),
    ("CoCoOp", "mini_c4_ep10_batch1_ctxv1"),
    ("KgCoOp", "mini_c4_ep20_batch8_ctxv1"),
    ("ProGrad", "mini_c4_ep20_batch8_ctxv1"),
    ("DualPromptMI", "mini_c4_ep20_batch8_ctxv1_ensemble_only"),
    ("DualPromptMI", "mini_c4_ep20_batch8_ctxv1"),
    ("MaPLe", "mini_c2_ep20_batch8_2ctx"),
    ("PromptSRC", "mini_c4_ep20_batch8_4+4ctx"),
    ("DualPromptMI", "mini_c4_ep20_batch8_ctxv1_ivlp"),
    ("DualPromptMI", "mini_c4_ep20_batch8_ctxv1_maple"),
}


@requires_dassl
def test_quick_mini_benchmark_end_to_end(tmp_path):
    import sys

    from helpers import write_synthetic_idx_root

    data = tmp_path / "data"
    write_synthetic_idx_root(str(data), train_per_class=20, test_per_class=40)
    out = tmp_path / "mini"
    env = {"QUICK": "1", "DATA": str(data), "OUTPUT": str(out), "SEEDS": "1", "SHOTS": "2", "PYTHON": sys.executable}
    proc = run_cli(["bash", "scripts/mini_benchmark.sh"], env_extra=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert os.path.isfile(out / "mini_clip" / "mini_clip.pt")
    assert len(glob.glob(str(out / "base2new" / "*" / "fashion_mnist" / "shots_2" / "*" / "*" / "seed1" / "results.json"))) == 2 * len(EXPECTED)
    with open(out / "base2new" / "results_base2new.csv") as f:
        rows = list(csv.DictReader(f))
    found = {(r["trainer"], r["config"]) for r in rows if r["dataset"] == "FashionMNIST"}
    assert found == EXPECTED
    assert open(out / "base_new.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "wall time:" in proc.stdout and "HM" in proc.stdout
    sha = (out / "mini_clip_checkpoint.txt").read_text().split()[0]
    assert f"mini CLIP: {out / 'mini_clip' / 'mini_clip.pt'}, sha256 {sha} (SCHEDULE=published)" in proc.stdout
    assert "Targets of DualPromptMI (mini_published_c4_ep10_batch4_ctxv1)" in proc.stdout
    assert "pretraining: epoch 1/1, step 3/3 (100%)" in proc.stdout and "ETA" in proc.stdout  # not silent for minutes

    # a second call reuses the checkpoint and the finished runs
    again = run_cli(["bash", "scripts/mini_benchmark.sh"], env_extra=env, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Reusing the mini CLIP" in again.stdout

    # a full-size rebuild refuses the QUICK checkpoint instead of reusing it
    full = run_cli(["bash", "scripts/mini_benchmark.sh"], env_extra={**env, "QUICK": "0", "REBUILD": "1"}, timeout=300)
    assert full.returncode == 2, full.stdout[-2000:] + full.stderr[-2000:]
    assert "was made with another recipe" in full.stderr and "Reusing" not in full.stdout
    # the shipped checkpoint into the same OUTPUT: its finished runs were made on other weights, so refused
    shipped = run_cli(["bash", "scripts/mini_benchmark.sh"], env_extra={**env, "QUICK": "0"}, timeout=300)
    assert shipped.returncode == 2, shipped.stdout[-2000:] + shipped.stderr[-2000:]
    assert f"error: OUTPUT={out} holds runs made on the mini CLIP {sha} " in shipped.stderr
    assert "choose another OUTPUT" in shipped.stderr and len(shipped.stderr.strip().splitlines()) == 1

    # the quick mode: its own configs, in its own folder, on the same CLIP
    quick_out = tmp_path / "mini_quick"
    quick = run_cli(["bash", "scripts/mini_benchmark.sh"], timeout=900,
                    env_extra={**env, "SCHEDULE": "mini", "OUTPUT": str(quick_out), "TRAINERS": "ZeroshotCLIP CoOp",
                               "CLIP_CKPT": str(out / "mini_clip" / "mini_clip.pt")})
    assert quick.returncode == 0, quick.stdout[-2000:] + quick.stderr[-2000:]
    with open(quick_out / "base2new" / "results_base2new.csv") as f:
        found = {(r["trainer"], r["config"]) for r in csv.DictReader(f) if r["dataset"] == "FashionMNIST"}
    assert found == {("ZeroshotCLIP", "mini"), ("CoOp", "mini_c4_ep20_batch8_ctxv1")} <= EXPECTED_QUICK_MODE


@requires_dassl
def test_quick_colour_benchmark_end_to_end(tmp_path):
    """BENCHMARK=fashion_colours: coloured images exported, its own CLIP, the ordering checks and the plot."""
    import sys

    from helpers import write_synthetic_idx_root

    data = tmp_path / "data"
    write_synthetic_idx_root(str(data), train_per_class=20, test_per_class=30)
    out = tmp_path / "colours"
    env = {"QUICK": "1", "BENCHMARK": "fashion_colours", "DATA": str(data), "OUTPUT": str(out), "SEEDS": "1",
           "SHOTS": "1", "TRAINERS": "ZeroshotCLIP CoOp KgCoOp", "PYTHON": sys.executable}
    proc = run_cli(["bash", "scripts/mini_benchmark.sh"], env_extra=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.load(open(out / "mini_clip" / "mini_clip.json"))["recipe"]["benchmark"] == "fashion_colours"
    assert os.path.isfile(data / "fashion_colours" / "split_fashion_colours.json")
    with open(out / "base2new" / "results_base2new.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["dataset"] == "FashionColours"]
    assert {r["trainer"] for r in rows} == {"ZeroshotCLIP", "CoOp", "KgCoOp"}
    assert "| CoOp base >= zero-shot base + 5 |" in proc.stdout and "| KgCoOp HM > CoOp HM |" in proc.stdout
    assert "ordering: " in proc.stdout
    assert open(out / "base_new.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"


# ----- settings are checked before the pretraining (seconds, not minutes) ---------------------

RECORD_CALLS = """import os, sys
with open(os.environ["CALLS_LOG"], "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
"""


def _run_with_fake_python(tmp_path, **env):
    """mini_benchmark.sh with a PYTHON that only records its arguments: what the script would run."""
    import time

    from conftest import write_fake_python

    log = tmp_path / "calls.log"
    fake = write_fake_python(tmp_path, RECORD_CALLS)
    env = {"PYTHON": str(fake), "CALLS_LOG": str(log), "OUTPUT": str(tmp_path / "out"), **env}
    began = time.monotonic()
    proc = run_cli(["bash", "scripts/mini_benchmark.sh"], env_extra=env, timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    return proc, calls, time.monotonic() - began


@pytest.mark.parametrize("setting, message", [
    ({"TRAINERS": "CoOP"}, "error: TRAINERS: unknown trainer CoOP (did you mean CoOp?); choose among: ZeroshotCLIP"),
    ({"TRAINERS": "ZeroshotCLIP kgcoop"}, "unknown trainer kgcoop (did you mean KgCoOp?)"),
    ({"TRAINERS": "CoOp IVLP"}, "error: TRAINERS: unknown trainer IVLP; choose among:"),
    ({"BENCHMARK": "Fashion_Colours"}, "choose fashion10 or fashion_colours (did you mean fashion_colours?)"),
    ({"SEEDS": ""}, "error: SEEDS is empty"),
    ({"SEEDS": "1 2 three"}, "three is not a non-negative integer"),
    ({"SEEDS": "-1"}, "-1 is not a non-negative integer"),
    ({"JOBS": "0"}, "error: JOBS=0: give a positive integer"),
    ({"JOBS": "2.5"}, "error: JOBS=2.5: give a positive integer"),
    ({"SCHEDULE": "fast"}, "error: SCHEDULE=fast: choose published (the default) or mini (the quick mode)"),
    ({"REBUILD": "yes"}, "error: REBUILD=yes: give 1 (pretrain) or 0 (the shipped mini CLIP)"),
])
def test_a_bad_setting_stops_before_the_pretraining(tmp_path, setting, message):
    proc, calls, seconds = _run_with_fake_python(tmp_path, **setting)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert calls == []  # nothing ran: no pretraining, no run
    assert not (tmp_path / "out" / "mini_clip" / "mini_clip.pt").exists()
    assert seconds < 20


def test_good_settings_reach_the_pretraining_and_the_grid(tmp_path):
    proc, calls, _ = _run_with_fake_python(tmp_path, TRAINERS="ZeroshotCLIP CoOp", SEEDS="0 7", JOBS="1", REBUILD="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert calls[0].startswith("-m benchmarks.pretrain_mini_clip --benchmark fashion10")
    grid = next(call for call in calls if call.startswith("-m tools.grid"))
    assert "--trainers ZeroshotCLIP CoOp --cfg" in grid and "--seeds 0 7 " in grid and "--jobs 1 " in grid
    assert "CoOp=mini_published_ep200_batch32_ctxv1" in grid


def test_by_default_the_shipped_checkpoint_is_checked_and_used_not_pretrained(tmp_path):
    proc, calls, _ = _run_with_fake_python(tmp_path, TRAINERS="ZeroshotCLIP CoOp", SEEDS="1", BENCHMARK="fashion_colours", REBUILD="0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert calls[0] == "-m benchmarks.mini_clip.shipped fashion_colours"
    # the real command: the pinned file's path, or one error line and exit 2 (which stops the script)
    real = run_cli(["-m", "benchmarks.mini_clip.shipped", "fashion10"])
    assert real.returncode == 0 and real.stdout.strip().endswith("benchmarks/checkpoints/fashion10-v1.fp16.pt")
