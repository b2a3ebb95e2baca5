"""Running a stage through ``tools.gridlib``'s runner, and what guards an --out folder: its manifest and lock.

``<out>/ablation_manifest.json`` records variant -> (trainer, cfg, opts, fingerprints of its
effective config) and the shared settings, so that a rerun into the same --out reuses finished
runs only where they mean what the plan says now; ``<out>/ablation_effective_configs.json`` keeps
each variant's flattened config, to name the keys that changed.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from clipprompt.errors import UserError
from clipprompt.runtime.files import write_json_atomic
from tools.ablationlib.plan import DEFAULT_CONFIG_ROOT, Plan, Settings, Variant, config_leaves, fingerprint, have_dassl
from tools.ablationlib.stages import Stage, stage_jobs
from tools.gridlib import Outcome, run_jobs

MANIFEST_NAME = "ablation_manifest.json"
EFFECTIVE_CONFIGS_NAME = "ablation_effective_configs.json"
LOCK_NAME = ".ablation.lock"


def read_json(path: Path, default):
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno}); repair it or use another --out") from None


def changed_keys(before: dict, now: dict, limit: int = 3) -> str:
    keys = sorted(key for key in set(before) | set(now) if before.get(key) != now.get(key))
    shown = [f"{key}: {before.get(key, '(absent)')} -> {now.get(key, '(absent)')}" for key in keys[:limit]]
    return "; ".join(shown) + (f"; and {len(keys) - limit} more" if len(keys) > limit else "")


def check_config_unchanged(variant: Variant, before: dict, leaves: dict, leaves_before: dict, out: Path) -> None:
    """Refuse to reuse runs whose variant now has another effective config (a changed default or YAML):
    ``before`` is its manifest record, ``leaves``/``leaves_before`` its configs by kind, now and then."""
    old = before.get("config_sha256") or {}
    differing = [kind for kind in leaves if kind in old and old[kind] != fingerprint(leaves[kind])]
    if not differing:
        return
    kind = next((kind for kind in differing if kind in leaves_before), None)
    what = changed_keys(leaves_before[kind], leaves[kind]) if kind else ""
    raise UserError(
        f"variant {variant.name!r}: its effective config changed since its runs in {out} were made "
        f"(a default in clipprompt/config.py or Dassl, or its trainer YAML{': ' + what if what else ''}); "
        f"its finished runs would be reused: use a new --out, or move {out} aside to rerun"
    )


def update_manifest(plan: Plan, stages: list[Stage], settings: Settings) -> Path:
    """Record variant -> (trainer, cfg, opts, config fingerprints) under --out; refuse a name, setting
    or effective config that changed meaning."""
    out = Path(settings.out)
    path = out / MANIFEST_NAME
    shared = {"data": str(Path(settings.data).expanduser().resolve()), "extra": list(settings.extra),
              "config_root": settings.config_root}
    manifest = read_json(path, {"shared": shared, "variants": {}, "stages": {}})
    for key, value in shared.items():
        # manifests written before config_root existed used the default
        before = manifest.get("shared", {}).get(key, DEFAULT_CONFIG_ROOT if key == "config_root" else None)
        if before != value:
            raise UserError(f"{settings.out} holds runs made with {key}={before!r}, "
                            f"not {value!r}: use the same setting or another --out")
    configs_path = out / EFFECTIVE_CONFIGS_NAME
    configs = read_json(configs_path, {})
    records = manifest.setdefault("variants", {})
    unguarded = []
    for variant in plan.variants:
        before = records.get(variant.name)
        definition = variant.definition()
        if before is not None and {key: before.get(key) for key in definition} != definition:
            shown = {key: before.get(key) for key in definition}
            raise UserError(
                f"variant {variant.name!r} in {path} was {shown}, the plan now says {definition}: "
                "rename the variant or use another --out (its finished runs would be reused)"
            )
        leaves = config_leaves(variant, settings)
        if before is not None:
            check_config_unchanged(variant, before, leaves, configs.get(variant.name, {}), out)
            if "config_sha256" not in before:  # written before the fingerprints existed: taken as it is
                unguarded.append(variant.name)
        kept = (before or {}).get("config_sha256", {})  # e.g. the effective one, when Dassl is missing now
        records[variant.name] = {**definition,
                                 "config_sha256": {**kept, **{kind: fingerprint(tree) for kind, tree in leaves.items()}}}
        configs[variant.name] = {**configs.get(variant.name, {}), **leaves}
    if unguarded:
        print(f"note: {path} had no config fingerprints for {', '.join(unguarded)} (an older tools/ablation.py): "
              "their runs are taken to match the current config", flush=True)
    if not have_dassl():
        print("note: Dassl is not importable: the config guard covers clipprompt/config.py's defaults, the "
              "trainer YAML and the options, not Dassl's own defaults", flush=True)
    for stage in stages:
        record = {"description": stage.description, "options": list(stage.dataset_opts)}
        manifest.setdefault("stages", {})[f"{stage.name}/{stage.dataset}"] = record
    manifest["shared"] = shared
    manifest["layout"] = ("<out>/<stage>/<variant> is OUTPUT of scripts/base2new_train.sh and base2new_test.sh; "
                          "the run folders below it are the scripts' (RUN_DIR_ONLY=1 prints them)")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(configs_path, configs, indent=1)
    write_json_atomic(path, manifest, indent=2)
    return path


def acquire_lock(out: Path):
    """An exclusive lock on --out for this process (released when it exits)."""
    Path(out).mkdir(parents=True, exist_ok=True)
    handle = open(Path(out) / LOCK_NAME, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        raise UserError(f"another tools/ablation.py is running on {out} ({handle.read().strip()}); wait for it")
    handle.truncate(0)
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle


def run_stage(variants: list[Variant], stage: Stage, settings: Settings, workers: list[dict]) -> list[Outcome]:
    """Run the stage's unfinished jobs through ``tools.gridlib.run_jobs``, the first one alone (it may
    prepare the data and caches); a failed job is reported and the others continue."""
    print(f"== {stage.name}: {stage.description}; {len(variants)} variant(s) x {len(settings.seeds)} seed(s)",
          flush=True)
    return run_jobs(stage_jobs(variants, stage, settings), workers, settings.repo, first_alone=True,
                    label=f"ablation {stage.name}")
