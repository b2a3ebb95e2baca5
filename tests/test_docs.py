"""The documentation stays true to the code: config keys and defaults, and links.

* docs/configuration.md documents every key clipprompt/config.py adds, with its default
  (and nothing else as a key);
* every relative link in README.md and docs/**/*.md names an existing file, and every
  ``#anchor`` an existing heading of its target (GitHub's anchor rules);
* docs/running.md names every trainer of train.py's TRAINER_NAMES, with the default CFG
  scripts/common.sh gives it;
* docs/developing.md's layout names every module of clipprompt/ and benchmarks/.

No Dassl needed: the config is built on an empty yacs tree, as tests/test_dualprompt.py does.
"""

import ast
import os
import re
import sys
import unicodedata
from pathlib import Path

import pytest
from yacs.config import CfgNode as CN

from clipprompt.config import extend_cfg

REPO = Path(__file__).resolve().parent.parent
CONFIGURATION = REPO / "docs" / "configuration.md"
README_MAX_LINES = 250


# ----- config keys ------------------------------------------------------------------


class _GrowingNode(CN):
    """A yacs node that creates a missing child node on attribute access, so that
    ``extend_cfg`` can run without Dassl's defaults and every leaf it sets is one it adds."""

    def __getattr__(self, name):
        if name.startswith("_") or not name.isupper():
            return super().__getattr__(name)
        if name not in self:
            self[name] = _GrowingNode()
        return self[name]


def added_config_keys() -> dict:
    """{full key: default} of every leaf ``clipprompt.config.extend_cfg`` sets."""
    cfg = extend_cfg(_GrowingNode())

    def leaves(node, prefix):
        for key, value in node.items():
            if isinstance(value, CN):
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    return dict(leaves(cfg, ""))


KEY_ROW = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)`\s*\|\s*`([^`]*)`\s*\|")


def documented_config_keys(text: str) -> dict:
    """{key: default text} of the table rows ``| `KEY` | `default` | ...`` of a page."""
    found = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = KEY_ROW.match(line)
        if match:
            key, default = match.groups()
            assert key not in found, f"docs/configuration.md line {number}: {key} is documented twice"
            found[key] = default
    return found


def same_default(documented: str, value) -> bool:
    try:
        parsed = ast.literal_eval(documented)
    except (ValueError, SyntaxError):
        return False
    return type(parsed) is type(value) and parsed == value


def test_the_key_walk_sees_what_extend_cfg_adds():
    keys = added_config_keys()
    assert keys["TRAINER.DUALPROMPTMI.MI.WEIGHT"] == 8.0
    assert keys["DATASET.CUSTOM.ENSEMBLE_TEMPLATES"] == []
    assert "DATASET.NAME" not in keys  # Dassl's own keys are not built here


def test_every_added_config_key_is_documented_with_its_default():
    documented = documented_config_keys(CONFIGURATION.read_text(encoding="utf-8"))
    keys = added_config_keys()
    missing = sorted(set(keys) - set(documented))
    assert not missing, f"docs/configuration.md lacks these keys of clipprompt/config.py: {', '.join(missing)}"
    wrong = [f"{key}: documented `{documented[key]}`, code {keys[key]!r}"
             for key in sorted(keys) if not same_default(documented[key], keys[key])]
    assert not wrong, "docs/configuration.md has wrong defaults:\n" + "\n".join(wrong)


def test_every_documented_config_key_exists():
    documented = documented_config_keys(CONFIGURATION.read_text(encoding="utf-8"))
    unknown = sorted(set(documented) - set(added_config_keys()))
    assert not unknown, f"docs/configuration.md documents keys clipprompt/config.py does not add: {', '.join(unknown)}"


# ----- links ------------------------------------------------------------------------

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: markup dropped, lowercase, punctuation dropped except
    '-' and '_', spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char in "-_" or category[0] in "LMN":
            kept.append(char)
        elif char == " ":
            kept.append("-")
    return "".join(kept)


def anchors_of(path: Path) -> set:
    """Every heading anchor of a Markdown file, with GitHub's -1, -2 ... for repeats."""
    seen: dict = {}
    anchors = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        anchor = github_anchor(match.group(2))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        anchors.add(anchor if count == 0 else f"{anchor}-{count}")
    return anchors


def relative_links(text: str):
    """(line number, target) of every link that is not a URL, outside code."""
    for number, line in prose_lines(text):
        match = REFERENCE_LINK.match(line)
        targets = [match.group(1)] if match else []
        targets += INLINE_LINK.findall(INLINE_CODE.sub("", line))
        for target in targets:
            if not SCHEME.match(target):
                yield number, target


def bad_links(page: Path) -> list:
    problems = []
    name = page.relative_to(REPO).as_posix()
    for number, target in relative_links(page.read_text(encoding="utf-8")):
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        where = f"{name}:{number}: link {target!r}"
        if not resolved.exists():
            problems.append(f"{where}: no file {os.path.relpath(resolved, REPO)}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors_of(resolved):
            problems.append(f"{where}: no heading #{anchor} in {os.path.relpath(resolved, REPO)}")
    return problems


DOC_PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(page):
    problems = bad_links(page)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_github_anchor_rules():
    assert github_anchor("Many runs, one command: `tools/grid.py`") == "many-runs-one-command-toolsgridpy"
    assert github_anchor("Few-shot sampling, base/new classes") == "few-shot-sampling-basenew-classes"
    assert github_anchor("`DATASET.CUSTOM.*` keys") == "datasetcustom-keys"
    assert github_anchor("Step 2 [see](x.md) — résumé") == "step-2-see--résumé"


def test_link_checker_finds_a_missing_file_and_a_missing_heading(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "b.md").write_text("# Real heading\n")
    page = tmp_path / "a.md"
    page.write_text("[ok](b.md#real-heading) [gone](c.md) [anchor](b.md#nope) `[code](d.md)`\n"
                    "```\n[fenced](e.md)\n```\n[web](https://example.org/x.md) [self](#top)\n# Top\n")
    problems = bad_links(page)
    assert len(problems) == 2, problems
    assert "'c.md'" in problems[0] and "no file c.md" in problems[0]
    assert "#nope" in problems[1] and "b.md" in problems[1]


def test_readme_is_short():
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; keep it at most {README_MAX_LINES} (move detail to docs/)"


# ----- docs/running.md: every trainer and its default CFG -----------------------------------

RUNNING = REPO / "docs" / "running.md"
PROTOCOLS = ("base2new", "fewshot", "xd")  # the columns of running.md's default-CFG table


def default_cfgs(trainer):
    """``{protocol: CFG}`` as scripts/common.sh's default_cfg gives it for an ordinary dataset, plus
    ``"base2new imagenet"``."""
    import subprocess

    calls = "; ".join(f"default_cfg oxford_pets {protocol}" for protocol in PROTOCOLS)
    proc = subprocess.run(["bash", "-c", f"source scripts/common.sh; {calls}; default_cfg imagenet base2new"],
                          cwd=REPO, env=dict(os.environ, TRAINER=trainer), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return dict(zip(PROTOCOLS + ("base2new imagenet",), proc.stdout.split()))


def default_cfg_table():
    """``{trainer: [cell per protocol]}`` of running.md's table, "same" read as the base-to-new cell."""
    text = RUNNING.read_text(encoding="utf-8")
    table = text[text.index("Default `CFG` per trainer"):].split("\n\n")[1]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = [cells[1] if cell == "same" else cell for cell in cells[1:]]
    return rows


def test_running_md_lists_every_trainer_with_its_default_cfg():
    import train

    rows = default_cfg_table()
    assert set(rows) == set(train.TRAINER_NAMES), "docs/running.md's default-CFG table: " + ", ".join(rows)
    for trainer in train.TRAINER_NAMES:
        defaults = default_cfgs(trainer)
        for protocol, cell in zip(PROTOCOLS, rows[trainer]):
            assert re.findall(r"`([^`]+)`", cell)[0] == defaults[protocol], (trainer, protocol, cell)
        if defaults["base2new imagenet"] != defaults["base2new"]:
            assert f"`{defaults['base2new imagenet']}` on ImageNet" in rows[trainer][0], trainer
    flag = next(line for line in RUNNING.read_text(encoding="utf-8").splitlines() if line.startswith("| `--trainer` |"))
    assert re.findall(r"`(\w+)`", flag.split("|")[2]) == list(train.TRAINER_NAMES), flag


# ----- docs/developing.md: the layout names every module ----------------------------------

DEVELOPING = REPO / "docs" / "developing.md"


def layout_block() -> str:
    """The fenced block under developing.md's "## Layout" heading."""
    text = DEVELOPING.read_text(encoding="utf-8")
    section = text[text.index("## Layout"):]
    return section.split("```")[1]


@pytest.mark.parametrize("folder", ["clipprompt", "benchmarks"])
def test_developing_md_layout_names_every_module(folder):
    """Every module of clipprompt/ (subpackages included) and benchmarks/ has its line in the layout."""
    layout = layout_block()
    modules = sorted(path.relative_to(REPO / folder).as_posix()
                     for path in (REPO / folder).glob("*.py" if folder == "benchmarks" else "**/*.py")
                     if path.name != "__init__.py")
    assert modules, folder
    missing = [module for module in modules
               if not re.search(rf"(?<![\w.]){re.escape(Path(module).name)}(?![\w])", layout)]
    assert not missing, f"docs/developing.md's layout does not name these modules of {folder}/: {', '.join(missing)}"


# ----- references to the docs from code, configs and scripts ------------------------------

# `docs/<page>.md`, `docs/experiments/<record>.md` or `README.md`, with an optional `#anchor`
DOC_REFERENCE = re.compile(r"(?<![\w./-])((?:docs/[\w./-]*?|)README\.md|docs/[\w./-]*?\.md)(?:#([\w-]+))?")
# "(README, "Some section")", "the README's 'X' section": a section named in prose, which no test can check
PROSE_README_REFERENCE = re.compile(r"\bREADME(?:\.md)?(?:,|'s\b)")
SOURCE_SUFFIXES = {".py", ".sh", ".yaml", ".yml"}
SOURCE_FOLDERS = ("clipprompt", "trainers", "datasets", "benchmarks", "configs", "scripts", "tools", "tests", ".ci")


def source_files(root: Path) -> list:
    """The repository's Python, shell and YAML files (top level and the source folders; no outputs)."""
    files = [path for path in root.iterdir() if path.is_file() and path.suffix in SOURCE_SUFFIXES]
    for folder in SOURCE_FOLDERS:
        files += [path for path in (root / folder).rglob("*")
                  if path.is_file() and (path.suffix in SOURCE_SUFFIXES or path.parent.name == ".ci")
                  and "__pycache__" not in path.parts]
    return sorted(path for path in files if path != Path(__file__).resolve())  # this file's are examples


def bad_doc_references(path: Path, root: Path) -> list:
    """Every reference of ``path`` to a page of the docs whose file or ``#anchor`` does not exist, and
    every README section named in prose."""
    problems = []
    name = path.relative_to(root).as_posix()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        for match in DOC_REFERENCE.finditer(line):
            page, anchor = match.groups()
            target = root / page
            if not target.is_file():
                problems.append(f"{name}:{number}: {match.group(0)}: no file {page}")
            elif anchor and anchor not in anchors_of(target):
                problems.append(f"{name}:{number}: {match.group(0)}: no heading #{anchor} in {page}")
        if PROSE_README_REFERENCE.search(line):
            problems.append(f"{name}:{number}: a README section named in prose; "
                            f"write docs/<page>.md#<anchor> or README.md#<anchor>")
    return problems


def test_every_reference_to_the_docs_in_code_and_configs_resolves():
    files = source_files(REPO)
    assert REPO / "trainers" / "base.py" in files and REPO / "tools" / "parity_upstream.sh" in files
    problems = [problem for path in files for problem in bad_doc_references(path, REPO)]
    assert not problems, "references to missing docs or headings:\n" + "\n".join(problems)


def test_doc_reference_checker_finds_a_missing_page_a_missing_heading_and_prose(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## Parity with upstream CoOp\n")
    (tmp_path / "README.md").write_text("# Title\n\n## Install\n")
    source = tmp_path / "a.py"
    readme = "README"
    source.write_text(f"# ok: docs/page.md#parity-with-upstream-coop, {readme}.md#install, docs/page.md.\n"
                      f"# gone: docs/gone.md and docs/page.md#parity\n"
                      f"# prose: ({readme}, \"Parity\") and the {readme}'s 'Install' section\n")
    problems = bad_doc_references(source, tmp_path)
    assert len(problems) == 3, problems
    assert problems[0] == "a.py:2: docs/gone.md: no file docs/gone.md"
    assert problems[1] == "a.py:2: docs/page.md#parity: no heading #parity in docs/page.md"
    assert problems[2].startswith("a.py:3: a README section named in prose")
