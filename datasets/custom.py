import os

from dassl.data.datasets import DATASET_REGISTRY

from clipprompt.errors import UserError
from clipprompt.prompts.templates import DEFAULT_TEMPLATE

from .base import CoOpDataset, resolve_path


@DATASET_REGISTRY.register()
class CustomDataset(CoOpDataset):
    """A user's own images, described by a split file in CoOp's format.

    Config keys (paths absolute, or relative to ``DATASET.ROOT``):

    * ``DATASET.CUSTOM.IMAGE_DIR``: folder the split file's paths are relative to;
    * ``DATASET.CUSTOM.SPLIT_FILE``: ``{"train": [[relpath, label, classname], ...],
      "val": [...], "test": [...]}`` ("val" may be empty or left out);
    * ``DATASET.CUSTOM.TEMPLATE`` (optional): prompt template, default "a photo of a {}.";
    * ``DATASET.CUSTOM.ENSEMBLE_TEMPLATES`` (optional): its prompt ensemble, the templates the
      HAND_TEMPLATES entry "dataset_ensemble" stands for.

    The few-shot cache goes to ``split_fewshot/<split file name>/`` next to the
    split file, so several split files can share a folder.
    """

    def locate(self, cfg, root):
        custom = cfg.DATASET.get("CUSTOM", None) or {}
        image_dir = custom.get("IMAGE_DIR", "")
        split_file = custom.get("SPLIT_FILE", "")
        for key, value in (("IMAGE_DIR", image_dir), ("SPLIT_FILE", split_file)):
            if not value:
                raise UserError(
                    f"DATASET.CUSTOM.{key} is not set (CustomDataset needs DATASET.CUSTOM.IMAGE_DIR "
                    "and DATASET.CUSTOM.SPLIT_FILE; see docs/datasets.md)"
                )
        image_dir = resolve_path(image_dir, root)
        self.custom_split_path = resolve_path(split_file, root)
        if not os.path.isdir(image_dir):
            raise UserError(f"DATASET.CUSTOM.IMAGE_DIR folder not found: {image_dir} (see docs/datasets.md)")
        if not os.path.isfile(self.custom_split_path):
            raise UserError(f"DATASET.CUSTOM.SPLIT_FILE not found: {self.custom_split_path} (see docs/datasets.md)")

        template = custom.get("TEMPLATE", "") or DEFAULT_TEMPLATE
        if not isinstance(template, str) or "{}" not in template:
            raise UserError(f"DATASET.CUSTOM.TEMPLATE must contain '{{}}' for the class name (got {template!r})")
        self.template = template
        ensemble = list(custom.get("ENSEMBLE_TEMPLATES", []) or [])
        bad = [t for t in ensemble if not isinstance(t, str) or "{}" not in t]
        if bad:
            raise UserError(f"DATASET.CUSTOM.ENSEMBLE_TEMPLATES: every template needs '{{}}' for the class name (got {bad[0]!r})")
        self.ensemble_templates = ensemble or None
        return os.path.dirname(self.custom_split_path), image_dir

    def locate_split_file(self, cfg, root):
        return self.custom_split_path

    def fewshot_cache_dir(self):
        stem = os.path.splitext(os.path.basename(self.split_path))[0]
        return os.path.join(self.dataset_dir, "split_fewshot", stem)
