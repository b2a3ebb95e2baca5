"""Hand-crafted prompt templates.

The per-dataset templates are the ones CoOp/CoCoOp use for zero-shot CLIP, so
zero-shot numbers and the hand-crafted view of DualPromptMI are comparable
with the published tables. Keys are Dassl dataset registry names.
"""

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


def dataset_template(dataset_name):
    """The hand-crafted template for a dataset, ``DEFAULT_TEMPLATE`` if unknown."""
    return DATASET_TEMPLATES.get(dataset_name, DEFAULT_TEMPLATE)


def fill(template, classname):
    """Fill a template; underscores in class names become spaces as in CoOp."""
    if "{}" not in template:
        raise ValueError(f"prompt template {template!r} has no '{{}}' placeholder for the class name")
    return template.format(classname.replace("_", " "))
