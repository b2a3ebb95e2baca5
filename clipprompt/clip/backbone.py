"""The one place that maps a loaded CLIP model, OpenAI's or open_clip's, to what the
prompt learners use.

Both kinds share the classic CLIP text tower (token and positional embeddings, residual
blocks, final LayerNorm, projection, feature at the end-of-text token) and differ in how
it is wired: OpenAI's blocks are sequence-first and own their causal mask; open_clip's
``Transformer`` takes batch-first input and the mask as an argument, and its mask is the
full context-length square (the caller cuts it to the input length). open_clip's text
projection may be a ``Linear``, its text tower may sit under ``model.text``
(``CustomTextCLIP``: EVA, ViTamin, PE-Core, MobileCLIP-B), and its image tower carries its
own normalisation constants.

Only text towers whose feature is exactly what the prompt learners compute are accepted:
causal, pooled at the argmax of the token ids (the end-of-text token of OpenAI's BPE),
tokenised with OpenAI's BPE. Anything else (SigLIP's last-token pooling, bidirectional
towers, CoCa's appended class token, HuggingFace text encoders, other tokenizers) is a
one-line error naming what is not supported, never a silently different feature.
"""

from torch import nn

from clipprompt.clip.openai_clip import import_clip
from clipprompt.errors import UserError

clip_api = import_clip().clip

OPEN_CLIP_PREFIX = "open_clip:"
OPENAI_BPE_VOCAB_SIZE = 49408  # clip's (and open_clip's SimpleTokenizer's) vocabulary
OPENAI_PIXEL_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_PIXEL_STD = (0.26862954, 0.26130258, 0.27577711)
SUPPORTED_TEXT_TOWER = "the prompt learners need a causal text tower pooled at the end-of-text token with OpenAI's BPE"


class Backbone:
    """What the prompt learners read from a CLIP model (both kinds, same attribute names).

    Text: ``token_embedding``, ``positional_embedding``, ``transformer`` (its blocks),
    ``seq_first`` (OpenAI's layout; else batch-first with ``causal_mask`` passed in),
    ``ln_final``, ``text_projection`` (a matrix, a ``Linear`` or None), ``context_length``,
    ``width``, ``tokenize``/``token_count``. The pooling rule is the same for every accepted
    model: the hidden state at the argmax of the token ids. Image: ``visual``,
    ``image_size`` (h, w), ``pixel_mean``/``pixel_std`` (None where the model carries none).
    Both: ``embed_dim``, ``logit_scale``, ``dtype``.
    """

    kind = None
    # The text tower's parts a TextEncoder registers (so they move with the prompt model).
    TEXT_PARTS = ("transformer", "positional_embedding", "ln_final", "text_projection")

    def __init__(self, model):
        self.model = model

    def tokenize(self, texts):
        return clip_api.tokenize(texts, context_length=self.context_length)

    @staticmethod
    def token_count(text):
        """BPE tokens of ``text`` without SOT/EOT (what it occupies in a prompt)."""
        return len(clip_api._tokenizer.encode(text))

    @property
    def width(self):
        return self.ln_final.weight.shape[0]


class OpenAIBackbone(Backbone):
    """``clip.model.CLIP``: sequence-first blocks that own their causal mask."""

    kind = "openai"
    seq_first = True
    causal_mask = None
    pixel_mean = pixel_std = None  # OpenAI's models carry none; configs set INPUT.PIXEL_MEAN/STD

    def __init__(self, model):
        super().__init__(model)
        self.token_embedding = model.token_embedding
        self.positional_embedding = model.positional_embedding
        self.transformer = model.transformer
        self.ln_final = model.ln_final
        self.text_projection = model.text_projection
        self.context_length = model.context_length
        self.visual = model.visual
        self.image_size = (model.visual.input_resolution, model.visual.input_resolution)
        self.embed_dim = model.visual.output_dim
        self.logit_scale = model.logit_scale

    @property
    def dtype(self):  # read live: follows a cast of the model after it was wrapped
        return self.model.dtype


class OpenCLIPBackbone(Backbone):
    """open_clip's ``CLIP`` or ``CustomTextCLIP`` with a supported text tower."""

    kind = "open_clip"
    seq_first = False

    def __init__(self, model, name=None):
        super().__init__(model)
        label = name or f"open_clip model {type(model).__name__}"
        text = getattr(model, "text", None)
        if text is None:  # CLIP: the text tower's parts are attributes of the model itself
            text, pool_type, cls_emb, pad_mask = model, model.text_pool_type, None, False
        else:
            if type(model).__name__ == "CoCa":
                raise UserError(f"{label}: CoCa models are not supported ({SUPPORTED_TEXT_TOWER})")
            if not hasattr(text, "transformer") or not hasattr(text, "token_embedding"):
                raise UserError(f"{label}: its text tower {type(text).__name__} (a HuggingFace text encoder) "
                                f"is not supported ({SUPPORTED_TEXT_TOWER})")
            pool_type = text.pool_type
            cls_emb, pad_mask = getattr(text, "cls_emb", None), getattr(text, "use_pad_mask", False)
        if text.attn_mask is None or pad_mask:
            raise UserError(f"{label}: a bidirectional text tower (no causal mask) is not supported ({SUPPORTED_TEXT_TOWER})")
        if cls_emb is not None:
            raise UserError(f"{label}: a text tower with an appended class token is not supported ({SUPPORTED_TEXT_TOWER})")
        if pool_type != "argmax":
            raise UserError(f"{label}: text_pool_type {pool_type!r} is not supported, only 'argmax' ({SUPPORTED_TEXT_TOWER})")
        if text.vocab_size != OPENAI_BPE_VOCAB_SIZE:
            raise UserError(f"{label}: a text vocabulary of {text.vocab_size} tokens is not OpenAI's BPE "
                            f"({OPENAI_BPE_VOCAB_SIZE}); not supported ({SUPPORTED_TEXT_TOWER})")
        self.token_embedding = text.token_embedding
        self.positional_embedding = text.positional_embedding
        self.transformer = text.transformer
        self.causal_mask = text.attn_mask  # (context, context); cut to the input length by the caller
        self.ln_final = text.ln_final
        self.text_projection = text.text_projection
        self.context_length = text.context_length
        self.visual = model.visual
        cfg = getattr(model.visual, "preprocess_cfg", None) or {}
        size = cfg.get("size", getattr(model.visual, "image_size", None))
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)
        self.pixel_mean = tuple(cfg.get("mean", getattr(model.visual, "image_mean", None) or OPENAI_PIXEL_MEAN))
        self.pixel_std = tuple(cfg.get("std", getattr(model.visual, "image_std", None) or OPENAI_PIXEL_STD))
        projection = self.text_projection
        if isinstance(projection, nn.Linear):
            self.embed_dim = projection.out_features
        elif projection is not None:
            self.embed_dim = projection.shape[1]
        else:
            self.embed_dim = self.width
        self.logit_scale = model.logit_scale

    @property
    def dtype(self):
        return self.transformer.get_cast_dtype()


def is_open_clip_model(model):
    return type(model).__module__.startswith("open_clip.")


def as_backbone(model):
    """The adapter of a loaded CLIP ``model`` (a ``Backbone`` is returned as it is).

    Called once where a model enters the library (the trainer after loading, a prompt model
    built from a raw CLIP); everything below takes the adapter.
    """
    if isinstance(model, Backbone):
        return model
    return OpenCLIPBackbone(model) if is_open_clip_model(model) else OpenAIBackbone(model)


def require_backbone(backbone):
    """``backbone`` itself; a clear TypeError for a raw CLIP model, so nothing re-wraps one on the way down."""
    if not isinstance(backbone, Backbone):
        raise TypeError(f"expected a clipprompt Backbone (as_backbone(model)), got {type(backbone).__name__}")
    return backbone


def project_text(features, projection):
    """The text projection of either kind: a matrix, a ``Linear`` (with bias), or none."""
    if projection is None:
        return features
    if isinstance(projection, nn.Module):
        return projection(features)
    return features @ projection


def check_pixel_normalisation(backbone, mean, std, keys=("INPUT.PIXEL_MEAN", "INPUT.PIXEL_STD")):
    """A model that carries its normalisation constants must be fed images normalised with them.

    Dassl builds its transforms from the config before the model is loaded, so a mismatch
    stops with the values to set instead of silently feeding differently normalised images.
    """
    if backbone.pixel_mean is None:
        return
    for key, given, wanted in zip(keys, (mean, std), (backbone.pixel_mean, backbone.pixel_std)):
        if len(given) != len(wanted) or any(abs(float(a) - float(b)) > 1e-6 for a, b in zip(given, wanted)):
            values = ", ".join(f"{v:g}" for v in wanted)
            raise UserError(f"{key} {list(given)} differs from the normalisation the backbone was trained with; "
                            f"set {key} [{values}]")
