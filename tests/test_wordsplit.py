"""The word-disjoint pseudo split (tools/ablationlib/wordsplit.py): pure functions of the class names."""

import math

import pytest

from benchmarks import fashion_colours as fc
from clipprompt.errors import UserError
from clipprompt.data.fewshot import subsample_classes
from clipprompt.data.splits import Item
from tools.ablationlib import wordsplit as ws


def names_of(classnames, labels):
    return [classnames[label] for label in labels]


def test_class_words_are_lower_case_words_with_underscores_as_spaces():
    assert ws.class_words("Red  Sneaker") == {"red", "sneaker"}
    assert ws.class_words("golden_retriever") == {"golden", "retriever"}
    assert ws.class_words("t-shirt") == {"t-shirt"}
    with pytest.raises(UserError, match="no word"):
        ws.class_words("  ")


def test_protocol_sizes_put_the_cut_between_the_sides():
    assert ws.protocol_sizes(9, 6) == (7, 6)
    assert ws.protocol_sizes(6, 9) == (6, 6)
    assert ws.protocol_sizes(5, 5) == (5, 5)
    assert ws.protocol_sizes(6, 5) == (6, 5)
    assert ws.kept_after_trim(3, 0) == 0
    for base in range(1, 8):
        for new in range(1, 8):
            b, n = ws.protocol_sizes(base, new)
            assert b <= base and n <= new and math.ceil((b + n) / 2) == b


def test_fashion_colours_base_classes_split_without_a_shared_word():
    """The benchmark's 30 base classes (5 items x 6 hues): the best split keeps 13 classes."""
    classnames = fc.CLASSNAMES[:30]
    split = ws.word_disjoint_split(classnames)
    assert ws.shared_words(classnames, split) == set()
    assert (len(split.pseudo_base), len(split.pseudo_new)) == (7, 6)
    assert sorted((*split.pseudo_base, *split.pseudo_new, *split.left_out)) == list(range(30))
    # a grid of item x colour: both the items and the colours are split between the sides
    base_words = set().union(*(ws.class_words(n) for n in names_of(classnames, split.pseudo_base)))
    new_words = set().union(*(ws.class_words(n) for n in names_of(classnames, split.pseudo_new)))
    assert {"t-shirt", "red"} <= base_words and {"pink", "blue"} <= new_words
    # ties go to the earliest labels: the same names give the same split
    assert ws.word_disjoint_split(list(classnames)) == split
    ws.check_protocol(split)


def test_the_label_order_cut_shares_words_where_the_word_disjoint_one_does_not():
    """Why the option exists: on fashion_colours the protocol's cut of the base classes reuses every colour."""
    classnames = fc.CLASSNAMES[:30]
    label_cut = ws.WordDisjointSplit(tuple(range(15)), tuple(range(15, 30)), ())
    assert {"red", "lime", "green", "azure", "blue", "pink"} <= ws.shared_words(classnames, label_cut)


def test_relabelled_items_give_the_protocol_exactly_the_pseudo_base_classes():
    classnames = fc.CLASSNAMES[:30]
    split = ws.word_disjoint_split(classnames)
    relabel = split.relabel()
    items = [Item(f"{label}.png", relabel[label], classnames[label]) for label in range(30) if label in relabel]
    base, = subsample_classes(items, subsample="base")
    new, = subsample_classes(items, subsample="new")
    assert {item.classname for item in base} == set(names_of(classnames, split.pseudo_base))
    assert {item.classname for item in new} == set(names_of(classnames, split.pseudo_new))


def test_single_word_classes_are_all_kept():
    classnames = ["cat", "dog", "bird", "fish", "frog"]
    split = ws.word_disjoint_split(classnames)
    assert (split.pseudo_base, split.pseudo_new, split.left_out) == ((0, 1, 2), (3, 4), ())


def test_classes_linked_by_a_word_stay_on_one_side_or_are_left_out():
    classnames = ["golden retriever", "labrador retriever", "pug", "beagle", "husky", "poodle"]
    split = ws.word_disjoint_split(classnames)
    assert ws.shared_words(classnames, split) == set()
    sides = [set(split.pseudo_base), set(split.pseudo_new)]
    assert any({0, 1} <= side for side in sides) or {0, 1} <= set(split.left_out)
    assert len(split.left_out) == 0  # 6 classes, 5 groups: all can be kept, 3 and 3


def test_many_words_are_dealt_by_group_greedily_keeping_every_class():
    # 20 words (above the exhaustive limit), 4 groups of linked names
    classnames = [f"w{g}a w{g}b{i}" for g in range(4) for i in range(4)] + ["x1", "x2", "x3", "x4"]
    split = ws.word_disjoint_split(classnames, exhaustive_words=8)
    assert ws.shared_words(classnames, split) == set()
    ws.check_protocol(split)
    assert len(split.pseudo_base) + len(split.pseudo_new) + len(split.left_out) == len(classnames)


def test_a_split_that_cannot_exist_is_a_one_line_error():
    with pytest.raises(UserError, match="no word-disjoint pseudo split exists"):
        ws.word_disjoint_split(["red dog", "blue dog", "green dog"])
    with pytest.raises(UserError, match="use --pseudo-split label"):
        # one group of 12 words, above an exhaustive limit of 8: refused, not guessed
        ws.word_disjoint_split([f"shared w{i}" for i in range(11)], exhaustive_words=8)
    with pytest.raises(UserError, match="at least 2 classes"):
        ws.word_disjoint_split(["cat"])
