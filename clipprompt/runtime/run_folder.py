"""An output folder's run: its status file, its log, and what a new run may do with it (Dassl-free).

``train.py`` writes ``run_status.json`` into the output folder when a run starts ("running") and
again when it ends ("finished", "failed" with the error, "interrupted"), so a folder always says
whether its numbers are complete. A new run into a folder that holds one is refused with advice
that matches what the folder holds: ``--resume`` only where there is a checkpoint to resume from.
"""

import datetime
import os
import shlex
import sys

from clipprompt.errors import UserError
from clipprompt.runtime.checkpoint import MODEL_NAME, saved_epochs
from clipprompt.runtime.files import move_aside, write_json_atomic

STATUS_FILE = "run_status.json"
LOG_FILE = "log.txt"
# What makes a folder hold a run (older runs have no status file).
RUN_MARKERS = ("results.json", MODEL_NAME, LOG_FILE, STATUS_FILE)
STATUSES = ("running", "finished", "failed", "interrupted")


def _now():
    return datetime.datetime.now().isoformat(timespec="seconds")


def read_status(folder):
    """The folder's status record, or None (no file, or one that cannot be read)."""
    import json

    try:
        with open(os.path.join(folder, STATUS_FILE)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("status") in STATUSES else None


def write_status(folder, status, **fields):
    """Record ``status`` (one of STATUSES) with ``fields``, keeping what the start recorded."""
    record = read_status(folder) or {}
    record.update(fields, status=status, updated=_now())
    if status == "running":
        record.setdefault("started", record["updated"])
    write_json_atomic(os.path.join(folder, STATUS_FILE), record)


def holds_run(folder):
    return bool(folder) and os.path.isdir(folder) and any(os.path.exists(os.path.join(folder, m)) for m in RUN_MARKERS)


def describe(folder):
    """``"a finished run"``, ``"an interrupted run (last checkpoint: epoch 3)"``, ...: what the folder holds."""
    status = (read_status(folder) or {}).get("status")
    epochs = saved_epochs(folder, MODEL_NAME)
    if status == "finished" or (status is None and os.path.exists(os.path.join(folder, "results.json"))):
        kind = "a finished run"
    elif status == "running":
        kind = "a run that is still running or was killed"
    elif status in ("failed", "interrupted"):
        kind = f"a{'n' if status == 'interrupted' else ''} {status} run"
    else:
        kind = "an unfinished run"
    where = f"last checkpoint: epoch {epochs[-1]}" if epochs else "no checkpoint"
    return f"{kind} ({where})", bool(epochs)


def guard(folder, resume="", overwrite=False):
    """Refuse to mix a new run into ``folder`` when it holds one; ``--overwrite`` moves it aside.

    Returns a line to print (or None). The advice names ``--resume`` only when the folder has a
    checkpoint to resume from.
    """
    if not holds_run(folder):
        return None
    if resume and os.path.abspath(resume) == os.path.abspath(folder):
        return None
    if overwrite:
        aside = move_aside(folder)
        return f"Moved the previous run in {folder} to {aside}"
    what, resumable = describe(folder)
    if resumable:
        advice = f"pass --resume {folder} to continue it, --overwrite to start afresh (the old run is moved aside)"
    else:
        advice = "there is nothing to resume; pass --overwrite to start afresh (the old run is moved aside)"
    raise UserError(f"output directory {folder} already holds {what}; {advice}, or choose another --output-dir")


def resume_command(argv, opts, folder):
    """The command line that resumes this run: ``argv`` with ``--resume folder`` among the flags
    (before the KEY VALUE pairs ``opts``) and without ``--overwrite``."""
    flags = list(argv[: len(argv) - len(opts)])
    kept, i = [], 0
    while i < len(flags):
        if flags[i] == "--overwrite":
            i += 1
        elif flags[i] == "--resume":
            i += 2
        elif flags[i].startswith("--resume="):
            i += 1
        else:
            kept.append(flags[i])
            i += 1
    return shlex.join(["python", "train.py", *kept, "--resume", folder, *opts])


class RunLog:
    """Console output copied into ``<folder>/log.txt``, as Dassl's logger does; a resumed run
    appends to it (after a dated separator), so log.txt always ends with the latest run."""

    def __init__(self, folder, append=False):
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, LOG_FILE)
        resumed = append and os.path.isfile(path)
        self.console = sys.stdout
        self.file = open(path, "a" if resumed else "w")
        if resumed:
            self.file.write(f"\n===== resumed {_now()} =====\n")

    def write(self, text):
        self.console.write(text)
        self.file.write(text)

    def flush(self):
        self.console.flush()
        self.file.flush()

    def isatty(self):
        return False

    def close(self):
        self.file.close()
