"""Plans, variants and run settings; the checks of their config files; effective-config fingerprints.

A plan (JSON, or a Python literal so that it may hold comments) lists variants and names the
reference they are compared with::

    {"description": "what the plan asks (shown by --list-plans)",
     "config_root": "benchmarks/configs/trainers",   # optional: where its trainer configs live
     "reference": "ensemble_only",
     "variants": [
        {"name": "ensemble_only", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1_ensemble_only"},
        {"name": "no_mi", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1",
         "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "0.0"], "note": "augmentation only"}]}

``--plan NAME`` reads ``configs/ablation/NAME.py`` (or ``NAME.json``); any other value is a path.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from clipprompt.errors import UserError
from clipprompt.runtime.yamlfile import load_yaml_mapping

REPO = Path(__file__).resolve().parents[2]
PLAN_FOLDER = REPO / "configs" / "ablation"
PLAN_SUFFIXES = (".py", ".json")
DEFAULT_CONFIG_ROOT = "configs/trainers"  # the scripts' CONFIG_ROOT; benchmarks/configs/trainers for the CPU benchmarks
PLAN_KEYS = {"description", "config_root", "reference", "variants"}
VARIANT_KEYS = {"name", "trainer", "cfg", "opts", "note"}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
KEY_PATTERN = re.compile(r"^[A-Z0-9_]+(\.[A-Z0-9_]+)*$")


@dataclass(frozen=True)
class Variant:
    name: str
    trainer: str
    cfg: str
    opts: tuple[str, ...] = ()
    note: str = ""

    def definition(self) -> dict:
        """What the variant's results depend on, as the plan says it (the manifest's record of it)."""
        return {"trainer": self.trainer, "cfg": self.cfg, "opts": list(self.opts)}


@dataclass(frozen=True)
class Plan:
    variants: tuple[Variant, ...]
    reference: str
    source: str
    config_root: str | None = None  # where its configs live, unless --config-root says otherwise
    description: str = ""

    def variant(self, name: str) -> Variant:
        return next(variant for variant in self.variants if variant.name == name)


@dataclass(frozen=True)
class Settings:
    """What every run shares."""

    out: Path
    data: str
    shots: int
    seeds: tuple[int, ...]
    extra: tuple[str, ...] = ()
    python: str = sys.executable
    repo: Path = REPO
    config_root: str = DEFAULT_CONFIG_ROOT  # trainer configs: <repo>/<config_root>/<trainer>/<cfg>.yaml


# ----- plans ------------------------------------------------------------------------------

def _option_value(value, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float, list, tuple)):
        return str(value)  # yacs decodes "True", "0.5", "['a', 'b']" with literal_eval
    raise UserError(f"{where}: option value {value!r} is not a string, number, boolean or list")


def check_options(opts: list, where: str) -> tuple[str, ...]:
    """KEY VALUE pairs as strings; a one-line UserError naming ``where`` otherwise."""
    if not isinstance(opts, (list, tuple)):
        raise UserError(f"{where}: opts must be a list of KEY VALUE strings, got {opts!r}")
    if len(opts) % 2:
        raise UserError(f"{where}: options must be KEY VALUE pairs; got an odd count: {' '.join(map(str, opts))}")
    keys = opts[0::2]
    for key in keys:
        if not isinstance(key, str) or not KEY_PATTERN.match(key):
            raise UserError(f"{where}: {key!r} is not a config key (e.g. TRAINER.DUALPROMPTMI.MI.WEIGHT)")
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise UserError(f"{where}: key(s) given twice: {', '.join(repeated)}")
    return tuple(str(item) if i % 2 == 0 else _option_value(item, where) for i, item in enumerate(opts))


def parse_variant(entry, index: int, source: str) -> Variant:
    where = f"plan {source}, variant {index + 1}"
    if not isinstance(entry, dict):
        raise UserError(f"{where}: expected an object with name, trainer, cfg and opts")
    unknown = sorted(set(entry) - VARIANT_KEYS)
    missing = sorted({"name", "trainer", "cfg"} - set(entry))
    if unknown or missing:
        problem = f"unknown key(s) {', '.join(unknown)}" if unknown else f"missing {', '.join(missing)}"
        raise UserError(f"{where}: {problem} (keys: {', '.join(sorted(VARIANT_KEYS))})")
    name = entry["name"]
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise UserError(f"{where}: name {name!r} must be a folder name (letters, digits, . _ + -)")
    where = f"plan {source}, variant {name!r}"
    for key in ("trainer", "cfg"):
        if not isinstance(entry[key], str) or not NAME_PATTERN.match(entry[key]):
            raise UserError(f"{where}: {key} {entry[key]!r} must be a trainer name / config file stem")
    opts = check_options(entry.get("opts") or [], where)
    return Variant(name, entry["trainer"], entry["cfg"], opts, str(entry.get("note") or ""))


def parse_plan(data, source: str) -> Plan:
    """Validate a plan object (see the module docstring)."""
    if not isinstance(data, dict) or not isinstance(data.get("variants"), list) or not data["variants"]:
        raise UserError(f"plan {source}: expected an object with a non-empty 'variants' list and a 'reference'")
    unknown = sorted(set(data) - PLAN_KEYS)
    if unknown:
        raise UserError(f"plan {source}: unknown key(s) {', '.join(unknown)} (keys: {', '.join(sorted(PLAN_KEYS))})")
    variants = [parse_variant(entry, index, source) for index, entry in enumerate(data["variants"])]
    seen: dict[str, str] = {}
    for variant in variants:
        # Case-insensitive: the roots are folders, and some file systems ignore case.
        key = variant.name.lower()
        if key in seen:
            raise UserError(f"plan {source}: variant names {seen[key]!r} and {variant.name!r} would share a folder")
        seen[key] = variant.name
    config_root = data.get("config_root")
    if config_root is not None and not (isinstance(config_root, str) and (REPO / config_root).is_dir()):
        raise UserError(f"plan {source}: config_root {config_root!r} is not a folder of the repository")
    plan = Plan(tuple(variants), "", source, config_root, str(data.get("description") or ""))
    return with_reference(plan, data.get("reference"))


def with_reference(plan: Plan, reference) -> Plan:
    """The plan compared against ``reference``, which must be one of its variants."""
    names = [variant.name for variant in plan.variants]
    if reference not in names:
        raise UserError(f"plan {plan.source}: reference {reference!r} is not one of the variants ({', '.join(names)})")
    return Plan(plan.variants, reference, plan.source, plan.config_root, plan.description)


def read_plan_file(path: Path):
    """The object in a plan file: JSON, else a Python literal (comments allowed)."""
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as json_error:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise UserError(f"plan file {path} is neither JSON ({json_error.msg}, line {json_error.lineno}) "
                            "nor a Python literal") from None


def plan_files(folder: Path = PLAN_FOLDER) -> dict[str, Path]:
    """{name: file} of the plans in ``folder`` (configs/ablation/), by name."""
    if not folder.is_dir():
        return {}
    named: dict[str, Path] = {}
    for suffix in reversed(PLAN_SUFFIXES):  # NAME.py wins over NAME.json
        named.update((p.stem, p) for p in sorted(folder.glob(f"*{suffix}")) if p.is_file())
    return dict(sorted(named.items()))


def shown_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def load_plan(spec: str, folder: Path = PLAN_FOLDER) -> Plan:
    """A plan file, or the name of one in ``folder`` (configs/ablation/NAME.py or NAME.json)."""
    path = Path(spec)
    if path.is_file():
        return parse_plan(read_plan_file(path), spec)
    named = plan_files(folder)
    if spec in named:
        return parse_plan(read_plan_file(named[spec]), shown_path(named[spec]))
    raise UserError(f"--plan {spec}: no such file and no plan of that name in {shown_path(folder)}/ "
                    f"(named plans: {', '.join(sorted(named)) or 'none'})")


def first_comment(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""


def list_plans(folder: Path = PLAN_FOLDER) -> str:
    """The named plans: description, reference and variants of each."""
    lines = []
    for name, path in sorted(plan_files(folder).items()):
        plan = parse_plan(read_plan_file(path), shown_path(path))
        lines.append(f"{name}: {plan.description or first_comment(path)} (reference: {plan.reference}; {shown_path(path)})")
        for variant in plan.variants:
            note = f"  # {variant.note}" if variant.note else ""
            lines.append(f"    {variant.name}: {variant.trainer} {variant.cfg} {' '.join(variant.opts)}".rstrip() + note)
    return "\n".join(lines)


# ----- config files ----------------------------------------------------------------------

def trainer_config_path(repo: Path, variant: Variant, config_root: str = DEFAULT_CONFIG_ROOT) -> Path:
    return Path(os.path.normpath(Path(repo) / config_root / variant.trainer / f"{variant.cfg}.yaml"))


def flatten_tree(tree, prefix: str = "") -> dict:
    """``{dotted key: value}`` of a nested mapping's leaves (a YAML tree, a yacs CfgNode)."""
    leaves = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            leaves.update(flatten_tree(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def flatten_yaml(path: Path) -> list[tuple[str, object]]:
    """``[(dotted key, value), ...]`` of a YAML config file's leaves; a syntax error names file and line."""
    return list(flatten_tree(load_yaml_mapping(path)).items())


def check_configs(plan: Plan, dataset: str, settings: Settings) -> None:
    """Config files exist and parse, --extra does not fight the plan, and (with Dassl's config) every key
    and value merges."""
    dataset_cfg = settings.repo / "configs" / "datasets" / f"{dataset}.yaml"
    if not dataset_cfg.is_file():
        known = sorted(path.stem for path in dataset_cfg.parent.glob("*.yaml"))
        raise UserError(f"--dataset {dataset}: {dataset_cfg} not found; known: {', '.join(known)}")
    load_yaml_mapping(dataset_cfg)
    extra_keys = set(settings.extra[0::2])
    for variant in plan.variants:
        path = trainer_config_path(settings.repo, variant, settings.config_root)
        if not path.is_file():
            known = sorted(p.stem for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
            hint = f"; configs of {variant.trainer}: {', '.join(known)}" if known else " (unknown trainer?)"
            raise UserError(f"variant {variant.name!r}: config file {path} not found{hint}")
        load_yaml_mapping(path)
        clash = sorted(extra_keys & set(variant.opts[0::2]))
        if clash:
            raise UserError(f"variant {variant.name!r} and --extra both set {', '.join(clash)}; set it in one place")
    if not have_dassl():
        return  # the runs will say what is missing
    import train

    for variant in plan.variants:
        args = train.build_parser().parse_args(
            ["--root", settings.data, "--trainer", variant.trainer, "--dataset-config-file", str(dataset_cfg),
             "--config-file", str(trainer_config_path(settings.repo, variant, settings.config_root)),
             *variant.opts, *settings.extra]
        )
        try:
            train.setup_cfg(args)
        except UserError as exc:
            raise UserError(f"variant {variant.name!r}: {exc}") from None


def have_dassl() -> bool:
    try:
        import dassl  # noqa: F401
    except ImportError:
        return False
    return True


# ----- effective-config fingerprints -------------------------------------------------------

DASSL_CONFIG = "effective"  # Dassl's defaults + clipprompt.config + the trainer YAML + options
OWN_CONFIG = "own_defaults_yaml_options"  # the same without Dassl's defaults (computable without Dassl)


def _auto_tree():
    """A yacs node that creates missing parents, so ``extend_cfg`` runs without Dassl's defaults."""
    from yacs.config import CfgNode

    class AutoNode(CfgNode):
        def __getattr__(self, name):
            if not name.isupper():  # config keys are upper case; leave yacs' own attributes alone
                return super().__getattr__(name)
            if name not in self:
                self[name] = AutoNode()
            return self[name]

    return AutoNode()


def own_config(variant: Variant, settings: Settings) -> dict:
    """clipprompt.config's defaults, then the trainer YAML's leaves, then the options (as strings)."""
    from clipprompt.config import extend_cfg

    leaves = flatten_tree(extend_cfg(_auto_tree()))
    leaves.update(flatten_yaml(trainer_config_path(settings.repo, variant, settings.config_root)))
    opts = (*variant.opts, *settings.extra)
    leaves.update(zip(opts[0::2], opts[1::2]))
    leaves["TRAINER.NAME"] = variant.trainer
    return leaves


def effective_config(variant: Variant, settings: Settings) -> dict | None:
    """The config the variant's runs see, without the dataset config (per --dataset, shared by every
    variant) and run paths; None without Dassl."""
    if not have_dassl():
        return None
    import train

    args = train.build_parser().parse_args(
        ["--trainer", variant.trainer, "--config-file", str(trainer_config_path(settings.repo, variant, settings.config_root)),
         *variant.opts, *settings.extra])
    return flatten_tree(train.setup_cfg(args))


def config_leaves(variant: Variant, settings: Settings) -> dict[str, dict[str, str]]:
    """``{kind: {key: repr(value)}}``: the effective config (with Dassl) and the one without Dassl's
    defaults (always), each comparable with the same kind recorded by an earlier invocation."""
    kinds = {OWN_CONFIG: own_config(variant, settings), DASSL_CONFIG: effective_config(variant, settings)}
    return {kind: {key: repr(value) for key, value in leaves.items()} for kind, leaves in kinds.items()
            if leaves is not None}


def fingerprint(leaves: dict[str, str]) -> str:
    """sha256 of the sorted ``(key, repr(value))`` leaves."""
    return hashlib.sha256(json.dumps(sorted(leaves.items())).encode("utf-8")).hexdigest()
