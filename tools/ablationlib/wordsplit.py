"""A word-disjoint pseudo split: pseudo-new classes share no class-name word with pseudo-base classes.

The label-order pseudo split (``stages.pseudo_stage``) cuts the base classes by label. On a dataset
whose class names combine words ("red sneaker", "lime t-shirt"), that puts every pseudo-new word in
some pseudo-base name: a prompt tuned on pseudo-base has seen them all, while the real new classes of
such a benchmark (fashion_colours) reuse none. This split reproduces the real split's property.

A class is the set of its name's words (lower case, split on white space). The words are dealt to two
sides; a class whose words all lie on side A is pseudo-base, one whose words all lie on side B is
pseudo-new, a class with words on both sides is left out. Of all assignments, the one keeping the
most classes once the sides are trimmed to the protocol's sizes wins (``kept_after_trim``); ties go to
the assignment that keeps the earliest labels, so that the split is a pure function of the class
names. Up to ``EXHAUSTIVE_WORDS`` words every assignment is tried; above it, whole groups of classes
linked by shared words (connected components) are dealt greedily, keeping every class, which needs
at least two groups.

The protocol (``clipprompt.data.fewshot.subsample_classes``) takes the first ``ceil(n / 2)`` sorted labels
as base: ``relabel`` gives pseudo-base labels ``0..b-1`` and pseudo-new ``b..``, after trimming the
larger side from its last label so that exactly the pseudo-base classes come first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from clipprompt.errors import UserError

EXHAUSTIVE_WORDS = 16  # 2**16 assignments of 16 words: well under a second


def class_words(classname: str) -> frozenset[str]:
    """The words of a class name, lower case ("Red  Sneaker" -> {"red", "sneaker"}); underscores count as spaces."""
    words = frozenset(classname.replace("_", " ").lower().split())
    if not words:
        raise UserError(f"class name {classname!r} has no word: a word-disjoint split needs named classes")
    return words


@dataclass(frozen=True)
class WordDisjointSplit:
    """Labels of the source (its base classes), as kept on each side, in increasing order."""

    pseudo_base: tuple[int, ...]
    pseudo_new: tuple[int, ...]
    left_out: tuple[int, ...]

    def relabel(self) -> dict[int, int]:
        """Source label -> label of the split file: pseudo-base first, so that the protocol's base half is it."""
        order = (*self.pseudo_base, *self.pseudo_new)
        return {label: index for index, label in enumerate(order)}


def protocol_sizes(num_base: int, num_new: int) -> tuple[int, int]:
    """The most (pseudo-base, pseudo-new) classes, at most ``num_base`` and ``num_new``, for which the
    protocol's cut at ``ceil(n / 2)`` falls exactly between them: base = new or base = new + 1."""
    if num_base > num_new:
        return num_new + 1, num_new
    return num_base, num_base


def kept_after_trim(num_base: int, num_new: int) -> int:
    base, new = protocol_sizes(num_base, num_new)
    return base + new if base and new else 0


def components(words_of: list[frozenset[str]]) -> list[list[int]]:
    """Indices of classes linked by shared words, each group in increasing order, groups by first index."""
    parent = list(range(len(words_of)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for index, words in enumerate(words_of):
        for word in words:
            if word in owner:
                parent[root(index)] = root(owner[word])
            else:
                owner[word] = index
    groups: dict[int, list[int]] = {}
    for index in range(len(words_of)):
        groups.setdefault(root(index), []).append(index)
    return sorted(groups.values(), key=lambda group: group[0])


def _exhaustive(words_of: list[frozenset[str]]) -> tuple[list[int], list[int]]:
    vocabulary = sorted(set().union(*words_of))
    bit = {word: 1 << position for position, word in enumerate(vocabulary)}
    masks = [sum(bit[word] for word in words) for words in words_of]
    full = (1 << len(vocabulary)) - 1
    best_key, best = None, ([], [])
    for side_a in range(full + 1):
        base = [i for i, mask in enumerate(masks) if mask & ~side_a == 0]
        new = [i for i, mask in enumerate(masks) if mask & side_a == 0]
        kept = kept_after_trim(len(base), len(new))
        if not kept:
            continue
        b, n = protocol_sizes(len(base), len(new))
        # most classes kept; then the earliest labels, pseudo-base first (a total order: deterministic)
        key = (kept, [-i for i in base[:b]], [-i for i in new[:n]])
        if best_key is None or key > best_key:
            best_key, best = key, (base, new)
    return best


def _greedy(groups: list[list[int]]) -> tuple[list[int], list[int]]:
    base: list[int] = []
    new: list[int] = []
    # largest groups first, each to the smaller side (pseudo-base on ties): every class is kept
    for group in sorted(groups, key=lambda g: (-len(g), g[0])):
        (base if len(base) <= len(new) else new).extend(group)
    return sorted(base), sorted(new)


def word_disjoint_split(classnames: list[str], exhaustive_words: int = EXHAUSTIVE_WORDS) -> WordDisjointSplit:
    """The split of ``classnames`` (index = source label) described in the module docstring."""
    if len(classnames) < 2:
        raise UserError(f"a word-disjoint pseudo split needs at least 2 classes, got {len(classnames)}")
    words_of = [class_words(name) for name in classnames]
    vocabulary = set().union(*words_of)
    groups = components(words_of)
    if len(vocabulary) <= exhaustive_words:
        base, new = _exhaustive(words_of)
    elif len(groups) >= 2:
        base, new = _greedy(groups)
    else:
        raise UserError(
            f"the {len(classnames)} base classes share words in one group of {len(vocabulary)} words (more than "
            f"{exhaustive_words} to search): no word-disjoint pseudo split is built; use --pseudo-split label"
        )
    if not base or not new:
        raise UserError(
            "every split of these class names puts a shared word on both sides: no word-disjoint pseudo split "
            "exists; use --pseudo-split label"
        )
    b, n = protocol_sizes(len(base), len(new))
    kept_base, kept_new = base[:b], new[:n]
    left_out = sorted(set(range(len(classnames))) - set(kept_base) - set(kept_new))
    return WordDisjointSplit(tuple(kept_base), tuple(kept_new), tuple(left_out))


def shared_words(classnames: list[str], split: WordDisjointSplit) -> set[str]:
    """Words in both a pseudo-base and a pseudo-new name (empty for a word-disjoint split)."""
    base_words = set().union(*(class_words(classnames[i]) for i in split.pseudo_base))
    new_words = set().union(*(class_words(classnames[i]) for i in split.pseudo_new))
    return base_words & new_words


def check_protocol(split: WordDisjointSplit) -> None:
    """The protocol's base half of the relabelled classes is exactly the pseudo-base classes."""
    n = len(split.pseudo_base) + len(split.pseudo_new)
    if math.ceil(n / 2) != len(split.pseudo_base):
        raise AssertionError(f"pseudo-base {len(split.pseudo_base)} of {n} classes is not the protocol's base half")


__all__ = [
    "EXHAUSTIVE_WORDS", "WordDisjointSplit", "check_protocol", "class_words", "components", "kept_after_trim",
    "protocol_sizes", "shared_words", "word_disjoint_split",
]
