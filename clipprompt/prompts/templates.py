"""Hand-crafted prompt templates.

The per-dataset templates are the ones CoOp/CoCoOp use for zero-shot CLIP, so
zero-shot numbers and the hand-crafted view of DualPromptMI are comparable
with the published tables. Keys are Dassl dataset registry names.
"""

from clipprompt.errors import UserError

DEFAULT_TEMPLATE = "a photo of a {}."

DATASET_TEMPLATES = {
    "OxfordPets": "a photo of a {}, a type of pet.",
    "OxfordFlowers": "a photo of a {}, a type of flower.",
    "FGVCAircraft": "a photo of a {}, a type of aircraft.",
    "DescribableTextures": "{} texture.",
    "EuroSAT": "a centered satellite photo of {}.",
    "StanfordCars": "a photo of a {}.",
    "Food101": "a photo of {}, a type of food.",
    "SUN397": "a photo of a {}.",
    "Caltech101": "a photo of a {}.",
    "UCF101": "a photo of a person doing {}.",
    "ImageNet": "a photo of a {}.",
    "ImageNetSketch": "a photo of a {}.",
    "ImageNetV2": "a photo of a {}.",
    "ImageNetA": "a photo of a {}.",
    "ImageNetR": "a photo of a {}.",
    "FashionMNIST": "a photo of a {}.",
}

# The seven-template ensemble CoOp reports for zero-shot CLIP on ImageNet.
IMAGENET_ENSEMBLE_TEMPLATES = [
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
]


# PromptSRC's frozen text teacher: 60 of the 80 ImageNet templates of OpenAI's CLIP
# (PromptSRC's trainers/imagenet_templates.py), used for every dataset.
PROMPTSRC_TEMPLATES = [
    "a photo of a {}.",
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
]


def dataset_template(dataset_name):
    """The hand-crafted template for a dataset, ``DEFAULT_TEMPLATE`` if unknown."""
    return DATASET_TEMPLATES.get(dataset_name, DEFAULT_TEMPLATE)


def fill(template, classname):
    """Fill a template; underscores in class names become spaces as in CoOp."""
    if "{}" not in template:
        raise ValueError(f"prompt template {template!r} has no '{{}}' placeholder for the class name")
    return template.format(classname.replace("_", " "))


TEMPLATE_ENTRIES = ("dataset", "dataset_ensemble", "imagenet_ensemble", "promptsrc_ensemble")


def expand_templates(entries, dataset_tpl, dataset_ensemble=None):
    """The templates of config entries, in order, without repeats.

    Entries: "dataset" (``dataset_tpl``, the dataset's template), "dataset_ensemble" (the dataset's
    own prompt ensemble ``dataset_ensemble``, e.g. the caption templates a CPU benchmark's mini CLIP
    was pretrained with; without one, its template plus CoOp's seven ImageNet templates, as CoOp's
    ZeroshotCLIP2), "imagenet_ensemble" (CoOp's seven), "promptsrc_ensemble" (PromptSRC's 60
    ImageNet templates), or a template with "{}".
    """
    templates = []
    for entry in entries:
        if entry == "dataset":
            templates.append(dataset_tpl)
        elif entry == "dataset_ensemble":
            templates.extend(dataset_ensemble if dataset_ensemble else [dataset_tpl, *IMAGENET_ENSEMBLE_TEMPLATES])
        elif entry == "imagenet_ensemble":
            templates.extend(IMAGENET_ENSEMBLE_TEMPLATES)
        elif entry == "promptsrc_ensemble":
            templates.extend(PROMPTSRC_TEMPLATES)
        elif "{}" in entry:
            templates.append(entry)
        else:
            raise UserError(f"template entry {entry!r} is not 'dataset', 'dataset_ensemble', 'imagenet_ensemble', "
                            "'promptsrc_ensemble' or a template with '{}'")
    return list(dict.fromkeys(templates))
