"""One run on several processes: the sampler, the gradient reduction, and train.py under torchrun (gloo, CPU).

Why the comparison is meaningful: both runs take the images in sequential order (one process
keeps Dassl's sampler, which for a random order draws from the global generator as upstream does;
two take their slices of GlobalBatchSampler's global batches), so both see the same global
batches; the config has no random transform; CoOp's loss is a per-image mean. What can differ is
the order of float sums (a batch of 4 in one process, two of 2 summed by the all-reduce).
"""

import os
import socket
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clipprompt.runtime.distributed import AdditiveStatistics, GlobalBatchSampler, reduce_gradients
from conftest import requires_dassl, run_cli
from helpers import DUAL_LEARNERS, MOVING, TINY, ctx_of, ok, results, train_args, user_error

# Context vectors of one process and of two processes with the same global batch agree to this
# (float32, reduction order only); accuracies are equal.
CTX_TOLERANCE = 1e-6


def slices(size, batch, world, epoch=0, seed=1):
    samplers = [GlobalBatchSampler(size, batch, rank=r, world_size=world, seed=seed) for r in range(world)]
    for s in samplers:
        s.set_epoch(epoch)
    return [s.plan() for s in samplers], samplers


@pytest.mark.parametrize("size,batch,world", [(10, 2, 2), (8, 2, 2), (16, 3, 4), (7, 4, 2), (3, 2, 4), (1, 1, 2)])
def test_slices_of_a_step_are_the_global_batch_of_one_process(size, batch, world):
    one, _ = slices(size, batch * world, 1)
    many, samplers = slices(size, batch, world)
    steps = {len(plan) for plan in many}
    assert steps == {len(one[0])} == {len(s) for s in samplers}  # every process runs the same steps
    for step, (global_batch, _) in enumerate(one[0]):
        real = [i for plan in many if plan[step][1] > 0 for i in plan[step][0]]
        assert sorted(real) == sorted(global_batch)  # nothing lost, nothing doubled
        weights = [plan[step][1] for plan in many]
        assert sum(weights) == pytest.approx(1.0)
        for plan in many:
            indices, weight = plan[step]
            assert 1 <= len(indices) <= batch
            if weight > 0:
                assert weight == pytest.approx(len(indices) / len(global_batch))
    if size >= batch * world:
        assert len(one[0]) == size // (batch * world)  # the incomplete global batch is dropped, as Dassl does


def test_fewer_images_than_processes_pads_with_weight_zero():
    plans, samplers = slices(3, 2, 4)
    assert [len(p) for p in plans] == [1, 1, 1, 1]
    assert [p[0][1] for p in plans] == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.0])
    assert len(plans[3][0][0]) == 1  # a repeated image, so the process can still run its step
    assert list(samplers[0]) == [plans[0][0][0]]  # iterating gives the plan


def test_order_depends_on_seed_and_epoch_only():
    a, _ = slices(20, 4, 1, epoch=0)
    b, _ = slices(20, 4, 1, epoch=0)
    c, _ = slices(20, 4, 1, epoch=1)
    d, _ = slices(20, 4, 1, epoch=0, seed=2)
    assert a == b and a != c and a != d
    sequential = GlobalBatchSampler(5, 2, shuffle=False)
    assert list(sequential) == [[0, 1], [2, 3]]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reduce_worker(rank, world, port, queue):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        used, unused, stats = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2)), torch.nn.Module()
        stats.register_buffer("total", torch.zeros(2))
        sync = AdditiveStatistics([(stats, ["total"])])
        sync.mark()
        used.grad = torch.full((3,), float(rank + 1))
        weight = [0.75, 0.25][rank]
        reduce_gradients([used, unused], weight)
        stats.total += torch.tensor([1.0, rank])
        sync.sync()
        added = stats.total.tolist()
        # every process starts afresh and recomputes its share (prototypes renewed at an epoch start)
        stats.total = torch.tensor([float(rank + 1), 10.0])
        sync.sync(from_zero=True)
        queue.put((rank, used.grad.tolist(), unused.grad, added, stats.total.tolist()))
    finally:
        dist.destroy_process_group()


def test_reduce_gradients_and_statistics_over_two_gloo_processes():
    ctx = mp.get_context("spawn")
    queue, port = ctx.Queue(), _free_port()
    procs = [ctx.Process(target=_reduce_worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    out = dict((item[0], item[1:]) for item in (queue.get(timeout=120) for _ in procs))
    for p in procs:
        p.join(60)
    for rank in (0, 1):
        grad, unused_grad, total, recomputed = out[rank]
        assert grad == pytest.approx([0.75 * 1 + 0.25 * 2] * 3)  # weighted sum over processes
        assert unused_grad is None  # unused everywhere: still skipped by the optimiser
        assert total == [2.0, 1.0]  # each process's additions, summed
        assert recomputed == [3.0, 20.0]  # the shares summed, not added to the old total


def torchrun(nproc, args):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *args]


NO_RANDOM_TRANSFORMS = ["INPUT.TRANSFORMS", "['normalize']"]


@requires_dassl
def test_two_gloo_processes_equal_one_process(tmp_path, pets_root, tiny_clip_path, tiny_cfg_file):
    # 4 base classes x 2 shots = 8 images; global batch 4 -> 2 steps per epoch, 2 epochs
    common = [*TINY, *NO_RANDOM_TRANSFORMS, "DATALOADER.TRAIN_X.SAMPLER", "SequentialSampler", "TRAINER.COOP.N_CTX", "4"]
    one = str(tmp_path / "one")
    ok(run_cli(train_args(pets_root, one, tiny_clip_path, tiny_cfg_file, trainer="CoOp",
                          extra=[*common, "DATALOADER.TRAIN_X.BATCH_SIZE", "4"])))
    two = str(tmp_path / "two")
    args = train_args(pets_root, two, tiny_clip_path, tiny_cfg_file, trainer="CoOp",
                      extra=[*common, "DATALOADER.TRAIN_X.BATCH_SIZE", "2"])
    proc = ok(run_cli(torchrun(2, args), timeout=600))
    assert "2 processes x batch 2 (global batch 4), 2 steps per epoch" in proc.stdout
    ctx_one, ctx_two = ctx_of(one, 2)["prompt_learner.ctx"], ctx_of(two, 2)["prompt_learner.ctx"]
    assert (ctx_one - ctx_two).abs().max().item() <= CTX_TOLERANCE
    res_one, res_two = results(one), results(two)
    assert res_one["accuracy"] == res_two["accuracy"] and res_two["num_samples"] == 12
    # process 0 alone wrote the run: one log, one tensorboard file, one results.json
    assert sorted(os.listdir(two)) == ["log.txt", "prompt_learner", "results.json", "run_status.json", "tensorboard"]
    assert len(os.listdir(os.path.join(two, "tensorboard"))) == 1
    assert proc.stdout.count("* accuracy:") == 1


@requires_dassl
def test_dualpromptmi_prototypes_cover_every_process(tmp_path, pets_root, tiny_clip_path, tiny_cfg_file):
    out = str(tmp_path / "dpmi")
    args = train_args(pets_root, out, tiny_clip_path, tiny_cfg_file,
                      extra=[*TINY, "OPTIM.MAX_EPOCH", "1", "DATALOADER.TRAIN_X.BATCH_SIZE", "2"])
    ok(run_cli(torchrun(2, args), timeout=600))
    counts = ctx_of(out, 1)["prototypes.count"]
    assert counts.tolist() == [2, 2, 2, 2]  # 8 images over two processes, summed: 2 shots x 4 classes


@requires_dassl
def test_backend_that_cannot_start_is_one_line(tmp_path, pets_root, tiny_clip_path, tiny_cfg_file):
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(_free_port()), "DIST_BACKEND": "nccl"}
    args = train_args(pets_root, str(tmp_path / "x"), tiny_clip_path, tiny_cfg_file, extra=TINY)
    user_error(run_cli(args, env_extra=env), "nccl", "GPU")
    user_error(run_cli(args, env_extra={**env, "DIST_BACKEND": "carrier-pigeon"}), "DIST_BACKEND=carrier-pigeon")


@requires_dassl
@pytest.mark.parametrize("trainer", ["MaPLe", "PromptSRC"])
def test_deep_trainers_two_gloo_processes_equal_one_process(tmp_path, pets_root, tiny_clip3_path, tiny_cfg_file,
                                                            deep_trainer_run, trainer):
    """Prompts in both towers (MaPLe: coupled; PromptSRC: its regularisers, per-image means, and the
    aggregate): the same global batches on two processes give the one-process prompts."""
    from helpers import deep_args

    one = deep_trainer_run(trainer)  # sequential, no random transform, batch 4
    two = str(tmp_path / "two")
    proc = ok(run_cli(torchrun(2, deep_args(trainer, pets_root, two, tiny_clip3_path, tiny_cfg_file, batch=2)),
                      timeout=600))
    assert "2 processes x batch 2 (global batch 4), 2 steps per epoch" in proc.stdout
    state_one, state_two = ctx_of(one, 2), ctx_of(two, 2)
    assert set(state_one) == set(state_two)
    for key in state_one:
        if state_one[key].is_floating_point():
            assert (state_one[key] - state_two[key]).abs().max().item() <= CTX_TOLERANCE, key
        else:
            assert torch.equal(state_one[key], state_two[key]), key
    assert results(one)["accuracy"] == results(two)["accuracy"]


@requires_dassl
def test_dualpromptmi_renewed_prototypes_cover_every_process(tmp_path, pets_root, tiny_clip3_path, tiny_cfg_file):
    """Vision prompts: each epoch every process recomputes the prototypes of its slice from zero,
    and the sums cover the whole training set once (not the old total plus the new one)."""
    common = [*TINY, *NO_RANDOM_TRANSFORMS, "DATALOADER.TRAIN_X.SAMPLER", "SequentialSampler", "TRAIN.CHECKPOINT_FREQ",
              "1", "TEST.NO_TEST", "True", *MOVING, *DUAL_LEARNERS["ivlp"]]
    one = str(tmp_path / "one")
    ok(run_cli(train_args(pets_root, one, tiny_clip3_path, tiny_cfg_file,
                          extra=[*common, "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "OPTIM.MAX_EPOCH", "1"])))
    two = str(tmp_path / "two")
    ok(run_cli(torchrun(2, train_args(pets_root, two, tiny_clip3_path, tiny_cfg_file,
                                      extra=[*common, "DATALOADER.TRAIN_X.BATCH_SIZE", "2"])), timeout=600))
    first, last = ctx_of(two, 1), ctx_of(two, 2)
    for state in (first, last):
        assert state["prototypes.count"].tolist() == [2, 2, 2, 2]  # 8 images over two processes, summed
    # epoch 1 (the prompts as built, the same on every process): the slices sum to one process's pass
    sums_one = ctx_of(one, 1)["prototypes.feature_sum"]
    assert (sums_one - first["prototypes.feature_sum"]).abs().max().item() <= 1e-5
    assert (first["prototypes.feature_sum"] - last["prototypes.feature_sum"]).abs().max().item() > 1e-3
