"""Grids of runs through the protocol scripts: the library of ``python -m tools.grid`` (tools/grid.py).

A job is one (trainer, dataset, seed) of a protocol (``base2new``, ``fewshot``, ``xd``): a list of
protocol-script steps (``Step``), each with the run folder the script itself says it writes
(RUN_DIR_ONLY=1, so the layout has one home: scripts/common.sh).

- planning: ``plan_grid`` -> list of ``Job``;
- running: ``run_jobs(jobs, local_workers(...))`` (one job per GPU, or CPU processes with one thread
  each) or ``run_slurm`` (submitit) -> list of ``Outcome``; finished jobs are skipped, unfinished run
  folders resume from their last checkpoint (or are moved aside, ``Job.resume`` False);
- ``print_table``: the table of parse_test_res.py for the protocol's tree.

tools/ablationlib runs its stages through ``run_jobs`` too.
"""

from __future__ import annotations

import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from clipprompt.errors import UserError
from clipprompt.runtime.files import move_aside

REPO = Path(__file__).resolve().parent.parent
PROTOCOLS = ("base2new", "fewshot", "xd")
RESULTS = "results.json"


@dataclass(frozen=True)
class Step:
    """One protocol-script call and the run folder it writes (as the script computes it)."""

    script: str  # file name under scripts/
    args: tuple[str, ...]  # positional arguments (dataset, seed)
    run_dir: Path

    @property
    def finished(self) -> bool:
        return (self.run_dir / RESULTS).is_file()


@dataclass
class Job:
    name: str
    steps: list[Step]
    env: dict  # TRAINER, CFG, SHOTS, DATA, OUTPUT, ... for the scripts
    opts: tuple[str, ...] = ()  # trailing KEY VALUE pairs for train.py
    log: Path | None = None
    # True: an unfinished run folder continues from its last checkpoint (the scripts' RESUME=1);
    # False: it is moved aside and the run starts afresh (tools/ablation.py: every run from scratch).
    resume: bool = True

    @property
    def finished(self) -> bool:
        return all(step.finished for step in self.steps)


@dataclass
class Outcome:
    job: Job
    status: str  # "done", "failed" or "skipped" (finished before)
    seconds: float = 0.0
    message: str = ""


# ----- planning ------------------------------------------------------------------

def known_names(folder: Path, suffix: str = "") -> list[str]:
    if not folder.is_dir():
        return []
    if suffix:
        return sorted(p.name[: -len(suffix)] for p in folder.iterdir() if p.name.endswith(suffix) and p.is_file())
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def check_names(kind: str, names, known: list[str], where: str) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"unknown {kind} {', '.join(unknown)}; known {kind}s: {', '.join(known) or 'none'} ({where})")


def script_env(job_env: dict, worker_env: dict | None = None, python: str | None = None) -> dict:
    env = {**os.environ, **job_env, **(worker_env or {})}
    env.setdefault("PYTHON", python or sys.executable)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_dir_of(script: str, args, env: dict, repo: Path = REPO) -> Path:
    """The run folder ``script`` would write, from the script itself (RUN_DIR_ONLY=1).

    ``args``: all its arguments, the trailing KEY VALUE options included (they may name the data,
    e.g. DATASET.CUSTOM.SPLIT_FILE)."""
    proc = subprocess.run(["bash", str(repo / "scripts" / script), *args], cwd=repo, capture_output=True, text=True,
                          env={**script_env(env), "RUN_DIR_ONLY": "1"}, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise UserError(f"scripts/{script} {' '.join(args)}: {lines[-1].removeprefix('error: ')}")
    return (repo / proc.stdout.strip().splitlines()[-1]).resolve()


def plan_grid(protocol: str, trainers, datasets, seeds, *, data="./data", output="./output", shots=16, cfgs=None,
              source="imagenet", opts=(), config_root=None, env=None, repo: Path = REPO) -> list[Job]:
    """The jobs of a grid, each a list of protocol-script steps; ``cfgs``: {trainer: config stem or
    list of stems} (default: the script's published setting). ``env``: more variables for the scripts."""
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    root = Path(config_root) if config_root else repo / "configs" / "trainers"
    check_names("trainer", trainers, known_names(root), f"the folders of {root}")
    known_datasets = known_names(repo / "configs" / "datasets", ".yaml")
    check_names("dataset", [*datasets, *([source] if protocol == "xd" else [])], known_datasets, "configs/datasets/*.yaml")
    cfgs = dict(cfgs or {})
    check_names("trainer", cfgs, list(trainers), "--cfg names a trainer that is not in --trainers")
    output = Path(output).expanduser().resolve()
    log_root = output / "grid_logs" / protocol
    jobs = []
    stems = {t: [c] if isinstance(c, str) else list(c) for t, c in cfgs.items()}
    for trainer, cfg_stem in [(t, c) for t in trainers for c in stems.get(t) or [None]]:
        base = {"TRAINER": trainer, "SHOTS": str(shots), "DATA": str(Path(data).expanduser().resolve()),
                "OUTPUT": str(output), **(env or {})}
        if config_root:
            base["CONFIG_ROOT"] = str(Path(config_root).resolve())
        if cfg_stem:
            base["CFG"] = cfg_stem
        for seed in seeds:
            seed = str(seed)
            if protocol == "xd":
                job_env = {**base, "SOURCE": source}
                runs = [(source, [("xd_train.sh", (seed,))] + [("xd_test.sh", (d, seed)) for d in datasets])]
            else:
                job_env = base
                scripts = ("base2new_train.sh", "base2new_test.sh") if protocol == "base2new" else ("fewshot_train.sh",)
                runs = [(d, [(s, (d, seed)) for s in scripts]) for d in datasets]
            for dataset, calls in runs:
                steps = [Step(script, args, run_dir_of(script, (*args, *opts), job_env, repo)) for script, args in calls]
                cfg = steps[0].run_dir.parent.name  # .../<Trainer>/<cfg>/seed<S>, as the script resolved it
                name = f"{trainer}_{cfg}_{dataset}_seed{seed}"
                jobs.append(Job(name, steps, dict(job_env), tuple(opts), log_root / f"{name}.log"))
    return jobs


# ----- running ----------------------------------------------------------------------

def visible_gpus() -> list[str]:
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [g for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:
        return []


def local_workers(jobs: int | None = None, gpus=None, gpus_per_run: int = 1, python: str | None = None) -> list[dict]:
    """One environment per worker: a GPU (or ``gpus_per_run`` GPUs and torchrun) each, else a CPU thread each."""
    gpus = list(gpus) if gpus is not None else visible_gpus()
    if gpus:
        if gpus_per_run < 1 or gpus_per_run > len(gpus):
            raise UserError(f"--gpus-per-run {gpus_per_run} must lie in 1..{len(gpus)} (the GPUs given)")
        groups = [gpus[i:i + gpus_per_run] for i in range(0, len(gpus) - gpus_per_run + 1, gpus_per_run)]
        workers = [{"CUDA_VISIBLE_DEVICES": ",".join(g)} for g in groups]
        if gpus_per_run > 1:
            launch = f"{shlex.quote(python or sys.executable)} -m torch.distributed.run --standalone --nproc_per_node {gpus_per_run}"
            for w in workers:
                w["LAUNCH"] = launch
        return workers
    count = jobs if jobs is not None else int(os.environ.get("JOBS", "1"))
    if count < 1:
        raise UserError(f"--jobs (JOBS) must be a positive integer, got {count}")
    return [{"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} for _ in range(count)]


_children: set = set()
_children_lock = threading.Lock()


def execute_job(job: Job, worker_env: dict | None = None, repo: Path = REPO, stop: threading.Event | None = None) -> Outcome:
    """Run the unfinished steps of ``job`` in order, output appended to ``job.log``."""
    start = time.monotonic()
    job.log.parent.mkdir(parents=True, exist_ok=True)
    env = script_env(job.env, worker_env)
    if job.resume:
        env["RESUME"] = "1"
    else:
        env.pop("RESUME", None)
    rerun_rest = False
    with open(job.log, "a", encoding="utf-8") as log:
        for step in job.steps:
            if step.finished and not rerun_rest:
                continue
            if step.finished:  # evaluated a model that was just retrained: keep it aside, evaluate again
                aside = move_aside(step.run_dir)
                log.write(f"# moved the outdated evaluation {step.run_dir} to {aside}\n")
            elif not job.resume and step.run_dir.exists():  # left by an interrupted run: start afresh
                aside = move_aside(step.run_dir)
                log.write(f"# moved the unfinished run {step.run_dir} to {aside}\n")
            rerun_rest = True
            argv = ["bash", str(repo / "scripts" / step.script), *step.args, *job.opts]
            shown = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in {**job.env, **(worker_env or {})}.items())
            log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {shown} {shlex.join(argv)}\n")
            log.flush()
            if stop is not None and stop.is_set():
                return Outcome(job, "failed", time.monotonic() - start, "interrupted")
            proc = subprocess.Popen(argv, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            with _children_lock:
                _children.add(proc)
            try:
                status = proc.wait()
            finally:
                with _children_lock:
                    _children.discard(proc)
            if status != 0 or not step.finished:
                why = f"exit status {status}" if status != 0 else f"no {RESULTS} in {step.run_dir}"
                return Outcome(job, "failed", time.monotonic() - start,
                               f"scripts/{step.script} {' '.join(step.args)}: {why}{last_error(job.log)}; log: {job.log}")
    return Outcome(job, "done", time.monotonic() - start)


def last_error(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    return f" ({errors[-1]})" if errors else (f" ({lines[-1]})" if lines else "")


def stop_children() -> None:
    """Terminate the scripts this process started (each in its own process group)."""
    with _children_lock:
        procs = list(_children)
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


class Progress:
    """A tqdm bar over the jobs to run: done/running/failed in its postfix, tqdm's ETA."""

    def __init__(self, total: int, skipped: int, label: str = "grid"):
        from tqdm import tqdm

        self.counts = {"done": 0, "running": 0, "failed": 0}
        self.bar = tqdm(total=total, unit="run", dynamic_ncols=True, file=sys.stderr,
                        bar_format="{desc} |{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")
        self.skipped = skipped
        self.label = label
        self.lock = threading.Lock()
        self._refresh()

    def _refresh(self):
        c = self.counts
        self.bar.set_description_str(f"{self.label}: done {c['done']} running {c['running']} failed {c['failed']} "
                                     f"(skipped {self.skipped})")

    def started(self):
        with self.lock:
            self.counts["running"] += 1
            self._refresh()

    def finished(self, outcome: Outcome):
        with self.lock:
            self.counts["running"] -= 1
            self.counts[outcome.status] += 1
            if outcome.status == "failed":
                self.bar.write(f"FAILED {outcome.job.name}: {outcome.message}")
            else:
                self.bar.write(f"done {outcome.job.name} ({outcome.seconds:.0f} s)")
            self.bar.update(1)
            self._refresh()

    def close(self):
        self.bar.close()


def run_jobs(jobs: list[Job], workers: list[dict], repo: Path = REPO, first_alone: bool = False,
             label: str = "grid") -> list[Outcome]:
    """Run the unfinished jobs in their order, one per worker at a time; finished ones are skipped.

    ``first_alone``: run the first pending job before the others start (it may prepare shared data).
    ``label`` starts the progress lines. Ctrl-C stops the running scripts and starts no new one;
    rerun to continue.
    """
    outcomes = [Outcome(job, "skipped") for job in jobs if job.finished]
    pending = [job for job in jobs if not job.finished]
    logs = os.path.commonpath([str(job.log.parent) for job in pending]) if pending else ""
    where = f" on {len(workers)} worker(s); logs in {logs}" if pending else ""
    print(f"{label}: {len(jobs)} job(s): {len(outcomes)} finished before (skipped), {len(pending)} to run{where}", flush=True)
    if not pending:
        return outcomes
    progress = Progress(len(pending), len(outcomes), label)
    todo: queue.Queue = queue.Queue()
    for job in pending:
        todo.put(job)
    stop = threading.Event()
    lock = threading.Lock()

    def work(worker_env):
        while not stop.is_set():
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            progress.started()
            try:
                outcome = execute_job(job, worker_env, repo, stop)
            except Exception as exc:  # a bug or an OS error must not hang the grid
                outcome = Outcome(job, "failed", 0.0, f"{exc.__class__.__name__}: {exc}")
            with lock:
                outcomes.append(outcome)
            progress.finished(outcome)

    threads = []
    try:
        if first_alone:
            work_first = todo.get_nowait()
            progress.started()
            outcome = execute_job(work_first, workers[0], repo, stop)
            outcomes.append(outcome)
            progress.finished(outcome)
        threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in workers]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.2)
    except KeyboardInterrupt:
        stop.set()
        stop_children()
        for t in threads:
            t.join()
        progress.close()
        raise UserError("interrupted; rerun the same command to continue (finished runs are skipped, "
                        "unfinished ones resume)") from None
    progress.close()
    return outcomes


def run_slurm(jobs: list[Job], folder: Path, parameters: dict, repo: Path = REPO) -> list[Outcome]:
    """One SLURM job per grid job through submitit (an optional dependency), with the same progress bar."""
    try:
        import submitit
    except ImportError:
        raise UserError("--slurm needs submitit: pip install submitit") from None
    outcomes = [Outcome(job, "skipped") for job in jobs if job.finished]
    pending = [job for job in jobs if not job.finished]
    print(f"grid: {len(jobs)} job(s): {len(outcomes)} finished before (skipped), {len(pending)} submitted to SLURM; "
          f"submitit files in {folder}", flush=True)
    if not pending:
        return outcomes
    executor = submitit.AutoExecutor(folder=str(Path(folder) / "%j"))  # Slurm where srun exists, else local
    executor.update_parameters(name="grid", **parameters)
    submitted = executor.map_array(execute_job, pending)
    progress = Progress(len(pending), len(outcomes))
    waiting = dict(zip(submitted, pending))
    reported_running = set()
    while waiting:
        for sjob, job in list(waiting.items()):
            if sjob.state in ("RUNNING",) and sjob not in reported_running:
                reported_running.add(sjob)
                progress.started()
            if sjob.done():
                if sjob not in reported_running:
                    progress.started()
                try:
                    outcome = sjob.result()
                except Exception as exc:
                    outcome = Outcome(job, "failed", 0.0, f"SLURM job {sjob.job_id}: {str(exc).strip().splitlines()[-1:]}")
                outcomes.append(outcome)
                progress.finished(outcome)
                del waiting[sjob]
        time.sleep(5 if waiting else 0)
    progress.close()
    return outcomes


def print_table(protocol: str, output, extra_args=()) -> int:
    """The aggregated table of the protocol's tree, by parse_test_res.py (one home for the tables)."""
    import parse_test_res

    tree = Path(output) / protocol
    if not tree.is_dir():
        print(f"no results under {tree}")
        return 0
    return parse_test_res.main([str(tree), *extra_args])
