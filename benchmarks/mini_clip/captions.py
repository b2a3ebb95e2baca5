"""Noisy captions for the mini CLIPs, like web alt-text rather than clean labels (docs/mini_clip.md).

The words and templates are each benchmark's own and live with its data: item words in
``benchmarks.fashion_mnist`` (``CLASS_WORDS``, ``LOOKALIKE``, ``GENERIC_WORDS``,
``CAPTION_TEMPLATES``), colour words in ``benchmarks.fashion_colours`` (``COLOUR_WORDS``,
``LOOKALIKE_COLOURS``, ``CAPTION_TEMPLATES``). Every caption a sampler can draw is tokenised once;
a sample is a set of rows of that table.
"""

import torch

from clipprompt.clip.openai_clip import import_clip
from clipprompt.errors import UserError

from .. import fashion_colours as fc
from .. import fashion_mnist as fm

# Caption kinds, drawn with probabilities generic_prob, wrong_word_prob, lookalike_prob,
# canonical_prob; the remaining captions use one of the class's other words.
CAPTION_KINDS = ("generic", "wrong", "lookalike", "canonical", "synonym")
# Colour kinds, drawn with probabilities colour_omit_prob, colour_lookalike_prob (one of a
# neighbouring hue's class-name words), colour_canonical_prob (one of its own class-name words);
# the rest use another word. A colour's class-name words are its first ``colour_names`` words.
COLOUR_KINDS = ("omitted", "lookalike", "canonical", "synonym")


def kind_edges(fractions, flags, rest):
    """Cumulative edges for drawing a caption kind; the fractions must be >= 0 and sum to <= 1."""
    if min(fractions) < 0 or sum(fractions) > 1:
        raise UserError(f"{', '.join(flags)} must be >= 0 and add up to at most 1 (the rest are {rest})")
    return torch.tensor(fractions, dtype=torch.float64).cumsum(0)


def draw_words(pools, edges, labels, generator):
    """A word id per label: a kind by ``edges``, then a uniform pick in ``pools[kind][label]``."""
    n = len(labels)
    kinds = torch.bucketize(torch.rand(n, generator=generator, dtype=torch.float64), edges, right=True)
    pick = torch.rand(n, generator=generator)  # uniform choice within a word pool
    word_ids = torch.empty(n, dtype=torch.long)
    for i, (kind, label) in enumerate(zip(kinds.tolist(), labels.tolist())):
        pool = pools[kind][label]
        word_ids[i] = pool[int(pick[i] * len(pool))]
    return word_ids


class CaptionSampler:
    """fashion10: draws noisy item captions (as rows of a pre-tokenised table) for item labels."""

    templates = fm.CAPTION_TEMPLATES

    def __init__(self, recipe):
        class_words = fm.CLASS_WORDS
        words = sorted({w for ws in class_words for w in ws} | set(fm.GENERIC_WORDS))
        self.word_index = {w: i for i, w in enumerate(words)}
        self.words = words
        self.num_words = len(words)
        self.class_word_ids = [torch.tensor([self.word_index[w] for w in ws]) for ws in class_words]
        generic_word_ids = torch.tensor([self.word_index[w] for w in fm.GENERIC_WORDS])
        all_class_word_ids = torch.tensor([self.word_index[w] for ws in class_words for w in ws])
        # Word pools per caption kind (CAPTION_KINDS order), per label.
        self.pools = [
            [generic_word_ids] * len(class_words),
            # another class's word, never one of the class's own words (even a shared one like "top")
            [all_class_word_ids[~torch.isin(all_class_word_ids, own)] for own in self.class_word_ids],
            [self.class_word_ids[fm.LOOKALIKE[label]][:1] for label in range(len(class_words))],
            [own[:1] for own in self.class_word_ids],
            [own[1:] for own in self.class_word_ids],
        ]
        self.edges = kind_edges(
            [recipe.generic_prob, recipe.wrong_word_prob, recipe.lookalike_prob, recipe.canonical_prob],
            ["--generic-prob", "--wrong-word-prob", "--lookalike-prob", "--canonical-prob"], "synonyms")
        self.captions = [t.format(w) for t in self.templates for w in self.phrases()]
        self.tokens = _tokenize(self.captions)  # [templates * phrases, 77]

    def phrases(self):
        return self.words

    def sample(self, labels, generator):
        """Token rows [B, 77] for item labels [B]."""
        word_ids = draw_words(self.pools, self.edges, labels, generator)
        template_ids = torch.randint(len(self.templates), (len(labels),), generator=generator)
        return self.tokens[template_ids * self.num_words + word_ids]


class ColourCaptionSampler(CaptionSampler):
    """fashion_colours: captions "<colour word> <item word>" for (item, colour) pairs, each word
    noisy on its own (the item word as for fashion10)."""

    templates = fc.CAPTION_TEMPLATES

    def __init__(self, recipe):
        colour_words = [""] + sorted({w for ws in fc.COLOUR_WORDS for w in ws})  # "" = colour omitted
        self.colour_index = {w: i for i, w in enumerate(colour_words)}
        self.colour_words = colour_words
        own = [torch.tensor([self.colour_index[w] for w in ws]) for ws in fc.COLOUR_WORDS]
        k = recipe.colour_names
        most = min(len(ws) for ws in fc.COLOUR_WORDS) - 1
        if not 1 <= k <= most:
            raise UserError(f"--colour-names must be between 1 and {most} "
                            f"(a colour needs a word left for the synonym captions), got {k}")
        # Colour word pools per kind (COLOUR_KINDS order), per palette colour.
        self.colour_pools = [
            [torch.tensor([0])] * len(own),
            [torch.cat([own[a][:k], own[b][:k]]) for a, b in fc.LOOKALIKE_COLOURS],
            [ws[:k] for ws in own],
            [ws[k:] for ws in own],
        ]
        self.colour_edges = kind_edges(
            [recipe.colour_omit_prob, recipe.colour_lookalike_prob, recipe.colour_canonical_prob],
            ["--colour-omit-prob", "--colour-lookalike-prob", "--colour-canonical-prob"], "colour synonyms")
        super().__init__(recipe)

    def phrases(self):
        return [f"{c} {w}".strip() for c in self.colour_words for w in self.words]

    def sample(self, labels, generator, colours=None):
        """Token rows [B, 77] for item labels [B] and palette colours [B]."""
        word_ids = draw_words(self.pools, self.edges, labels, generator)
        colour_ids = draw_words(self.colour_pools, self.colour_edges, colours, generator)
        template_ids = torch.randint(len(self.templates), (len(labels),), generator=generator)
        phrase_ids = colour_ids * self.num_words + word_ids
        return self.tokens[template_ids * (len(self.colour_words) * self.num_words) + phrase_ids]


def _tokenize(captions):
    return import_clip().tokenize(captions)
