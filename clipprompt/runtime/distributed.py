"""One run on several processes (``torchrun``), in plain PyTorch.

``torchrun --nproc_per_node N train.py ...`` starts N copies of train.py with
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set. Each process
trains on its slice of every global batch (``GlobalBatchSampler``), the
gradients of the trainable tensors are summed over processes with weights
that make them the gradient of the global batch's mean loss
(``reduce_gradients``), and only process 0 writes files.

Why an all-reduce after backward and not ``DistributedDataParallel``: the
trainable tensors (context vectors, CoCoOp's meta-net, DualPromptMI's
critics) are called from inside a frozen CLIP, between its towers; some are
unused in a given configuration (the view critic under posterior MI), and a
few-shot set smaller than one global batch can leave a process without a
real image. One flat all-reduce of those gradients is what DDP's reducer
does, with explicit per-process weights and no module wrapping or
``find_unused_parameters``; the trainable part is 2K-300K floats, so DDP's
overlap of communication with backward would save nothing measurable.
"""

import contextlib
import datetime
import os

import torch
import torch.distributed as dist

from clipprompt.errors import UserError

BACKEND_VARIABLE = "DIST_BACKEND"  # overrides the default backend (nccl on CUDA, gloo on CPU)
TIMEOUT = datetime.timedelta(hours=2)  # process 0 evaluates alone while the others wait (best_val)


def launched_by_torchrun(environ=os.environ):
    return "RANK" in environ and "WORLD_SIZE" in environ


def is_distributed():
    return dist.is_available() and dist.is_initialized()


def rank():
    return dist.get_rank() if is_distributed() else 0


def world_size():
    return dist.get_world_size() if is_distributed() else 1


def is_main_process():
    return rank() == 0


def init_from_env(use_cuda=True):
    """Start the process group torchrun describes; returns its backend, or None when not under torchrun.

    Process ``LOCAL_RANK`` of a node uses GPU ``LOCAL_RANK`` (nccl); without a GPU every process
    runs on the CPU (gloo). A backend that cannot start is a one-line ``UserError``.
    """
    if not launched_by_torchrun():
        return None
    if is_distributed():
        return dist.get_backend()
    local_rank, size = int(os.environ.get("LOCAL_RANK", 0)), os.environ["WORLD_SIZE"]
    cuda = use_cuda and torch.cuda.is_available()
    backend = os.environ.get(BACKEND_VARIABLE) or ("nccl" if cuda else "gloo")
    if backend not in ("nccl", "gloo", "mpi", "ucc") or not dist.is_backend_available(backend):
        raise UserError(f"{BACKEND_VARIABLE}={backend}: this torch build cannot start it; use gloo (CPU) or nccl (CUDA GPUs)")
    if backend == "nccl":
        count = torch.cuda.device_count() if cuda else 0
        if local_rank >= count:
            raise UserError(f"the nccl backend needs one GPU per process: process {local_rank} of this node has none "
                            f"({count} visible); start at most {count} processes per node (--nproc_per_node), "
                            f"or {BACKEND_VARIABLE}=gloo on the CPU")
        torch.cuda.set_device(local_rank)
    try:
        dist.init_process_group(backend=backend, timeout=TIMEOUT)
    except Exception as exc:  # torch raises several types here (DistNetworkError, RuntimeError, ValueError)
        reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise UserError(f"cannot start the {backend} process group (rank {os.environ['RANK']} of {size}, "
                        f"MASTER_ADDR={os.environ.get('MASTER_ADDR', '')} MASTER_PORT={os.environ.get('MASTER_PORT', '')}): {reason}") from None
    return backend


def shutdown():
    if is_distributed():
        dist.destroy_process_group()


@contextlib.contextmanager
def main_process_first():
    """Process 0 runs the block first (e.g. a download), the others after it; no deadlock if it raises."""
    if not is_distributed():
        yield
        return
    if not is_main_process():
        dist.barrier()
    try:
        yield
    finally:
        if is_main_process():
            dist.barrier()


def broadcast_value(value):
    """Process 0's ``value`` (a picklable object) on every process."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_tensors(tensors):
    """Copy process 0's values into ``tensors`` (in place) on every process."""
    if not is_distributed():
        return
    with torch.no_grad():
        for tensor in tensors:
            dist.broadcast(tensor.data, src=0)


class GlobalBatchSampler(torch.utils.data.Sampler):
    """Batch sampler: this process's slice of every global batch of ``world_size x batch_size`` images.

    Each epoch draws one permutation of the dataset from ``(seed, epoch)``, the same on every
    process, and cuts it into global batches; process r takes the r-th slice of each. As Dassl's
    loader does for one process, the incomplete last global batch is dropped when there is at
    least one full one. A dataset smaller than one global batch gives one step with its images
    split as evenly as possible; a process left without any gets one repeated image with weight 0.
    So every process runs the same number of steps, and the union of the slices of a step is
    exactly the batch one process would take with ``batch_size x world_size``.
    ``step_weight(i)``: this process's share of the real images of step i.
    """

    def __init__(self, size, batch_size, rank=0, world_size=1, seed=0, shuffle=True):
        if size < 1 or batch_size < 1:
            raise ValueError(f"need at least one image and a positive batch size, got {size} and {batch_size}")
        self.size, self.batch_size, self.rank, self.world_size = size, batch_size, rank, world_size
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def permutation(self):
        if not self.shuffle:
            return list(range(self.size))
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % (2 ** 63))
        return torch.randperm(self.size, generator=generator).tolist()

    def plan(self):
        """[(indices of this process, weight)] per step of the current epoch."""
        order, per_step = self.permutation(), self.batch_size * self.world_size
        if self.size >= per_step:
            share = 1.0 / self.world_size
            return [(order[s * per_step + self.rank * self.batch_size: s * per_step + (self.rank + 1) * self.batch_size], share)
                    for s in range(self.size // per_step)]
        base, extra = divmod(self.size, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        count = base + (self.rank < extra)
        if count == 0:
            return [([order[0]], 0.0)]
        return [(order[start:start + count], count / self.size)]

    def __iter__(self):
        self._weights = []
        for indices, weight in self.plan():
            self._weights.append(weight)
            yield indices

    def __len__(self):
        return max(1, self.size // (self.batch_size * self.world_size))

    def step_weight(self, step):
        weights = getattr(self, "_weights", None)
        return weights[step] if weights and step < len(weights) else self.plan()[step][1]


def reduce_gradients(parameters, weight):
    """Replace each gradient by the sum over processes of ``weight x gradient`` (one all-reduce per dtype).

    A parameter without a gradient on every process keeps none, so the optimiser skips it as it
    would in one process (no weight decay or momentum on an unused tensor).
    """
    if not is_distributed():
        return
    params = list(parameters)
    by_dtype = {}
    for p in params:
        by_dtype.setdefault(p.dtype, []).append(p)
    for dtype, group in by_dtype.items():
        device = group[0].device
        pieces = [(p.grad.detach() if p.grad is not None else torch.zeros_like(p)).reshape(-1) * weight for p in group]
        present = torch.tensor([p.grad is not None for p in group], dtype=dtype, device=device)
        flat = torch.cat([*pieces, present])
        dist.all_reduce(flat)
        offset = 0
        for p, had in zip(group, flat[-len(group):].tolist()):
            n = p.numel()
            if had > 0:
                reduced = flat[offset:offset + n].view_as(p)
                if p.grad is None:
                    p.grad = reduced.clone()
                else:
                    p.grad.copy_(reduced)
            offset += n


class AdditiveStatistics:
    """Keep additive buffers (sums and counts, e.g. class prototypes) equal to their total over processes.

    Each process adds its own images between two ``sync()`` calls; ``sync`` all-reduces what was
    added since the last one. ``mark()`` records the current values as common to every process
    (after building the model or loading a checkpoint on each of them).
    """

    def __init__(self, buffers):
        """``buffers``: ``[(module, names of its additive buffers)]`` (``PromptCLIP.synced_statistics()``)."""
        self.buffers, self._base = [(module, tuple(names)) for module, names in buffers], None

    @property
    def modules(self):
        return [module for module, _ in self.buffers]

    def _tensors(self):
        return [getattr(module, name) for module, names in self.buffers for name in names]

    def mark(self):
        self._base = [t.detach().clone() for t in self._tensors()]

    def sync(self, from_zero=False):
        """Add up what each process added since the last ``sync``/``mark``. ``from_zero``: every process
        has just reset the statistics and recomputed its own share (e.g. class prototypes renewed at an
        epoch start), so the total is the sum of the tensors themselves, whatever was marked before."""
        if not is_distributed() or not self.modules:
            return
        tensors = self._tensors()
        if from_zero or self._base is None or any(t.shape != b.shape for t, b in zip(tensors, self._base)):
            self._base = [torch.zeros_like(t) for t in tensors]  # re-created buffers start from zero
        deltas = [t - b for t, b in zip(tensors, self._base)]
        changed = torch.tensor([float(any(bool(d.any()) for d in deltas))], device=tensors[0].device)
        dist.all_reduce(changed, op=dist.ReduceOp.MAX)
        if changed.item() > 0:
            for tensor, base, delta in zip(tensors, self._base, deltas):
                dist.all_reduce(delta)
                tensor.copy_(base + delta)
        self.mark()
