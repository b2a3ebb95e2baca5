"""tools/grid.py (python -m tools.grid) over tools/gridlib.py: grids of runs through the protocol scripts.

The queue, skipping, resuming and failure reports run the real scripts with a fake train.py
interpreter (fast, no Dassl); one grid trains for real with the tiny CLIP.
"""

import importlib.util
import json
import shutil
import sys

import pytest

from clipprompt.errors import UserError
from conftest import requires_dassl, run_cli, write_fake_python
from tools import grid, gridlib

# Stands in for "python" in the scripts: records its arguments, writes a results.json like train.py,
# and "crashes" after a first checkpoint for the run named by FAKE_FAIL (trainer:seed) unless resumed.
FAKE_TRAIN = r'''
import json, os, sys
args = sys.argv[2:]  # sys.argv[1] is train.py
value = lambda flag, default=None: args[args.index(flag) + 1] if flag in args else default
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps(args) + "\n")
out, trainer, seed = value("--output-dir"), value("--trainer"), int(value("--seed"))
os.makedirs(out, exist_ok=True)
if os.environ.get("FAKE_FAIL") == f"{trainer}:{seed}" and "--resume" not in args:
    os.makedirs(os.path.join(out, "prompt_learner"), exist_ok=True)
    open(os.path.join(out, "prompt_learner", "model.pth.tar-1"), "w").close()
    print("error: simulated crash", file=sys.stderr)
    sys.exit(1)
subsample = value("DATASET.SUBSAMPLE_CLASSES", "all")
record = {"trainer": trainer, "dataset": os.path.basename(value("--dataset-config-file"))[:-5], "split": "test",
          "subsample": subsample, "seed": seed, "shots": int(value("DATASET.NUM_SHOTS", 16)),
          "config": os.path.basename(value("--config-file"))[:-5], "backbone": "fake",
          "accuracy": 50.0 + seed + (10 if subsample == "base" else 0), "macro_f1": 40.0, "num_samples": 10,
          "epoch": 1, "output_dir": out, "variants": {}}
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(record, f)
print("fake run finished")
'''


@pytest.fixture()
def fake_python(tmp_path, monkeypatch):
    wrapper = write_fake_python(tmp_path, FAKE_TRAIN)
    calls = tmp_path / "calls.txt"
    calls.touch()
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    monkeypatch.setenv("PYTHON", str(wrapper))
    return calls


def read_calls(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_grid_runs_skips_finished_and_resumes_after_a_failure(tmp_path, fake_python, monkeypatch, capsys):
    out = tmp_path / "out"
    argv = ["base2new", "--trainers", "CoOp", "DualPromptMI", "--datasets", "oxford_pets", "--seeds", "1", "2",
            "--data", str(tmp_path), "--output", str(out), "--jobs", "2", "--shots", "4", "--opts", "OPTIM.MAX_EPOCH", "1"]
    monkeypatch.setenv("FAKE_FAIL", "CoOp:2")
    assert grid.main(argv) == 1
    captured = capsys.readouterr()
    assert "grid: 4 job(s): 0 finished before (skipped), 4 to run on 2 worker(s)" in captured.out
    assert "grid: 3 done, 0 skipped (finished before), 1 failed" in captured.out
    log = out / "grid_logs" / "base2new" / "CoOp_vit_b16_ctxv1_oxford_pets_seed2.log"
    assert f"failed: CoOp_vit_b16_ctxv1_oxford_pets_seed2: scripts/base2new_train.sh oxford_pets 2: exit status 1 " \
           f"(error: simulated crash); log: {log}" in captured.err
    assert "simulated crash" in log.read_text()  # each job keeps its console output
    assert "fake run finished" in (out / "grid_logs/base2new/DualPromptMI_vit_b16_c4_ep10_batch4_ctxv1_oxford_pets_seed1.log").read_text()
    assert "grid: done 3 running 0 failed 1" in captured.err  # the progress bar's last state
    calls = read_calls(fake_python)
    assert len(calls) == 3 * 2 + 1  # three jobs train + test, the failed one stopped after its train step
    assert all(c[c.index("OPTIM.MAX_EPOCH") + 1] == "1" and c[c.index("DATASET.NUM_SHOTS") + 1] == "4" for c in calls)

    # Rerun the same command: finished jobs are skipped, the interrupted run continues from its checkpoint.
    monkeypatch.delenv("FAKE_FAIL")
    assert grid.main(argv) == 0
    captured = capsys.readouterr()
    assert "grid: 4 job(s): 3 finished before (skipped), 1 to run" in captured.out
    new_calls = read_calls(fake_python)[len(calls):]
    assert len(new_calls) == 2
    train_dir = out / "base2new/train_base/oxford_pets/shots_4/CoOp/vit_b16_ctxv1/seed2"
    assert new_calls[0][new_calls[0].index("--resume") + 1] == str(train_dir)
    rows = [line.split() for line in captured.out.splitlines() if line.startswith("oxford_pets")]
    assert {row[1] for row in rows} == {"CoOp", "DualPromptMI"}
    coop = next(row for row in rows if row[1] == "CoOp")
    assert coop[4] == "61.50"  # base: mean of 50 + seed + 10 over seeds 1, 2 (the table of parse_test_res.py)
    assert grid.main(argv) == 0 and len(read_calls(fake_python)) == len(calls) + 2  # nothing left to run


def test_retrained_model_is_evaluated_again_and_the_old_evaluation_kept(tmp_path, fake_python):
    jobs = gridlib.plan_grid("base2new", ["CoOp"], ["oxford_pets"], [1], data=tmp_path, output=tmp_path / "out")
    outcome, = gridlib.run_jobs(jobs, gridlib.local_workers(jobs=1))
    assert outcome.status == "done"
    train, test = jobs[0].steps
    shutil.rmtree(train.run_dir)  # e.g. deleted by the user to retrain
    outcome, = gridlib.run_jobs(jobs, gridlib.local_workers(jobs=1))
    assert outcome.status == "done" and len(read_calls(fake_python)) == 4
    assert list(test.run_dir.parent.glob("seed1.old-*"))  # the stale evaluation was moved aside, not deleted


def test_fewshot_and_cross_dataset_plans_follow_the_scripts(tmp_path):
    out = tmp_path / "o"
    few, = gridlib.plan_grid("fewshot", ["CoOp"], ["caltech101"], [3], shots=8, output=out, cfgs={"CoOp": "vit_b16_ep50"})
    assert [s.script for s in few.steps] == ["fewshot_train.sh"]
    assert few.steps[0].run_dir == out / "fewshot/caltech101/shots_8/CoOp/vit_b16_ep50/seed3"
    two = gridlib.plan_grid("fewshot", ["CoOp"], ["caltech101"], [3], output=out, cfgs={"CoOp": ["vit_b16", "vit_b16_ep50"]})
    assert [job.name for job in two] == ["CoOp_vit_b16_caltech101_seed3", "CoOp_vit_b16_ep50_caltech101_seed3"]
    xd, = gridlib.plan_grid("xd", ["DualPromptMI"], ["caltech101", "imagenetv2"], [1], output=out, source="imagenet")
    assert [(s.script, s.args) for s in xd.steps] == [("xd_train.sh", ("1",)), ("xd_test.sh", ("caltech101", "1")),
                                                      ("xd_test.sh", ("imagenetv2", "1"))]
    assert xd.steps[2].run_dir == out / "xd/evaluation/DualPromptMI/vit_b16_c4_ep5_batch4_ctxv1_xd/imagenetv2/seed1"


def test_unknown_trainer_or_dataset_is_one_line_listing_the_known_ones(tmp_path):
    proc = run_cli(["-m", "tools.grid", "base2new", "--trainers", "CoOp", "Foo", "--datasets", "oxford_pets"])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: unknown trainer Foo; known trainers: ") and "CoCoOp, CoOp, DualPromptMI" in proc.stderr
    proc = run_cli(["-m", "tools.grid", "fewshot", "--trainers", "CoOp", "--datasets", "oxford_pet"])
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown dataset oxford_pet; known datasets: ")
    assert "oxford_pets" in proc.stderr
    with pytest.raises(UserError, match="unknown trainer CoCoOp.*--cfg"):
        gridlib.plan_grid("base2new", ["CoOp"], ["oxford_pets"], [1], cfgs={"CoCoOp": "x"}, output=tmp_path)
    with pytest.raises(UserError, match="unknown CFG=nope for TRAINER=CoOp"):
        gridlib.plan_grid("base2new", ["CoOp"], ["oxford_pets"], [1], cfgs={"CoOp": "nope"}, output=tmp_path)


def test_workers_one_gpu_each_or_cpu_processes():
    workers = gridlib.local_workers(gpus=["0", "1", "2", "3"])
    assert [w["CUDA_VISIBLE_DEVICES"] for w in workers] == ["0", "1", "2", "3"] and "LAUNCH" not in workers[0]
    workers = gridlib.local_workers(gpus=["0", "1", "2", "3", "4"], gpus_per_run=2)
    assert [w["CUDA_VISIBLE_DEVICES"] for w in workers] == ["0,1", "2,3"]
    assert workers[0]["LAUNCH"].endswith("-m torch.distributed.run --standalone --nproc_per_node 2")
    workers = gridlib.local_workers(jobs=3, gpus=[])
    assert len(workers) == 3 and all(w["OMP_NUM_THREADS"] == "1" and w["CUDA_VISIBLE_DEVICES"] == "" for w in workers)
    with pytest.raises(UserError, match="--jobs"):
        gridlib.local_workers(jobs=0, gpus=[])
    with pytest.raises(UserError, match="--gpus-per-run 3"):
        gridlib.local_workers(gpus=["0", "1"], gpus_per_run=3)


def test_slurm_without_submitit_says_how_to_install(tmp_path):
    if importlib.util.find_spec("submitit") is not None:
        pytest.skip("submitit is installed here")
    with pytest.raises(UserError, match="pip install submitit"):
        grid.main(["fewshot", "--trainers", "CoOp", "--datasets", "oxford_pets", "--output", str(tmp_path), "--slurm"])


@requires_dassl
def test_grid_trains_with_the_tiny_clip(tmp_path, pets_root, tiny_clip_path, tiny_cfg_file):
    root = tmp_path / "configs"
    (root / "CoOp").mkdir(parents=True)
    shutil.copy(tiny_cfg_file, root / "CoOp" / "tiny.yaml")
    out = tmp_path / "out"
    proc = run_cli(["-m", "tools.grid", "fewshot", "--trainers", "CoOp", "--cfg", "CoOp=tiny", "--config-root", str(root),
                    "--datasets", "oxford_pets", "--seeds", "1", "2", "--shots", "1", "--jobs", "2", "--data", pets_root,
                    "--output", str(out), "--opts", "MODEL.BACKBONE.PATH", tiny_clip_path, "OPTIM.MAX_EPOCH", "1",
                    "INPUT.SIZE", "(32, 32)"], timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for seed in (1, 2):
        run = out / f"fewshot/oxford_pets/shots_1/CoOp/tiny/seed{seed}"
        assert json.loads((run / "results.json").read_text())["seed"] == seed
        assert "Finish training" in (out / f"grid_logs/fewshot/CoOp_tiny_oxford_pets_seed{seed}.log").read_text()
    assert "grid: 2 done, 0 skipped (finished before), 0 failed" in proc.stdout
    assert any(line.startswith("OxfordPets") and "CoOp" in line for line in proc.stdout.splitlines())


def test_slurm_jobs_go_through_submitit(tmp_path, fake_python, monkeypatch, capsys):
    """The submitit calls (AutoExecutor, update_parameters, map_array, Job.done/result), recorded by a double
    that runs each job here; the real library is an optional dependency, not installed in CI."""
    seen = {}

    class Job:
        def __init__(self, fn, item):
            self.job_id, self.state, self._outcome = "7_0", "COMPLETED", fn(item)

        def done(self):
            return True

        def result(self):
            return self._outcome

    class AutoExecutor:
        def __init__(self, folder):
            seen["folder"] = folder

        def update_parameters(self, **params):
            seen["params"] = params

        def map_array(self, fn, items):
            return [Job(fn, item) for item in items]

    monkeypatch.setitem(sys.modules, "submitit", type(sys)("submitit"))
    sys.modules["submitit"].AutoExecutor = AutoExecutor
    out = tmp_path / "out"
    argv = ["fewshot", "--trainers", "CoOp", "--datasets", "oxford_pets", "--seeds", "1", "2", "--output", str(out),
            "--slurm", "--partition", "gpu", "--time-min", "90"]
    assert grid.main(argv) == 0
    assert seen["folder"] == str(out / "grid_logs" / "slurm" / "%j")
    assert seen["params"]["slurm_partition"] == "gpu" and seen["params"]["timeout_min"] == 90
    assert seen["params"]["gpus_per_node"] == 1 and len(read_calls(fake_python)) == 2
    assert "grid: 2 done, 0 skipped" in capsys.readouterr().out


def test_a_job_without_resume_moves_an_unfinished_run_aside_and_starts_afresh(tmp_path, fake_python, monkeypatch):
    jobs = gridlib.plan_grid("base2new", ["CoOp"], ["oxford_pets"], [1], data=tmp_path, output=tmp_path / "out")
    job = jobs[0]
    job.resume = False  # as tools/ablation.py's jobs
    monkeypatch.setenv("FAKE_FAIL", "CoOp:1")
    monkeypatch.setenv("RESUME", "1")  # a user's exported RESUME does not apply to such a job
    outcome, = gridlib.run_jobs(jobs, gridlib.local_workers(jobs=1))
    assert outcome.status == "failed" and (job.steps[0].run_dir / "prompt_learner").is_dir()
    monkeypatch.delenv("FAKE_FAIL")
    outcome, = gridlib.run_jobs(jobs, gridlib.local_workers(jobs=1))
    assert outcome.status == "done"
    calls = read_calls(fake_python)
    assert len(calls) == 1 + 2 and not any("--resume" in c or "--overwrite" in c for c in calls)
    aside, = job.steps[0].run_dir.parent.glob("seed1.old-*")  # the unfinished run, kept
    assert (aside / "prompt_learner" / "model.pth.tar-1").is_file()
    assert f"# moved the unfinished run {job.steps[0].run_dir} to {aside}" in job.log.read_text()
