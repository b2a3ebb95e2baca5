"""What a mini CLIP allows downstream: zero-shot and 16-shot class-mean accuracy per half, on the
split the benchmark's Dassl dataset uses (the official TEST split, never seen in pretraining)."""

import dataclasses

import torch
import torch.nn.functional as F

from clipprompt.clip.openai_clip import import_clip

from .. import fashion_colours as fc
from .. import fashion_mnist as fm
from .preprocess import preprocess_images
from .training import pick_per_class

ZERO_SHOT_TEMPLATE = "a photo of a {}."


@torch.no_grad()
def encode_images(model, images, batch_size=500):
    features = torch.cat([model.encode_image(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
    return F.normalize(features, dim=-1)


@torch.no_grad()
def zero_shot_weights(model, classnames=fm.CLASSNAMES, template=ZERO_SHOT_TEMPLATE):
    clip = import_clip()

    prompts = [template.format(name) for name in classnames]
    return F.normalize(model.encode_text(clip.tokenize(prompts)), dim=-1)


@dataclasses.dataclass
class DownstreamTask:
    """What evaluation needs of a benchmark's downstream split (the one its Dassl dataset uses)."""

    classnames: list
    base_labels: list
    new_labels: list
    labels: object  # numpy int64 [N], class label per downstream image
    split: dict  # {"train": idx, "val": idx, "test": idx}
    images: object  # indices -> uint8 images as exported ([N, H, W] or [N, H, W, 3])


def downstream_task(benchmark, data_root):
    if benchmark == "fashion10":
        images, labels = fm.load_split(data_root, "test")
        return DownstreamTask(fm.CLASSNAMES, fm.BASE_LABELS, fm.NEW_LABELS, labels,
                              fm.downstream_split(labels, seed=0), lambda idx: images[idx])
    downstream = fc.load_downstream(data_root, seed=0)
    return DownstreamTask(fc.CLASSNAMES, fc.BASE_LABELS, fc.NEW_LABELS, downstream.labels, downstream.split,
                          downstream.images)


@torch.no_grad()
def evaluate(model, data_root, recipe, seed):
    """Zero-shot and 16-shot class-mean accuracy (%) per half on the downstream split."""
    model.eval()
    task = downstream_task(recipe.benchmark, data_root)
    labels, split, num_classes = task.labels, task.split, len(task.classnames)
    generator = torch.Generator().manual_seed(seed)
    test_idx = split["test"][pick_per_class(labels[split["test"]], recipe.eval_images_per_class, generator,
                                            num_classes).numpy()]
    pool_idx = split["train"]
    shot_idx = pool_idx[pick_per_class(labels[pool_idx], 16, generator, num_classes).numpy()]

    size = recipe.image_resolution
    test_features = encode_images(model, preprocess_images(task.images(test_idx), size))
    shot_features = encode_images(model, preprocess_images(task.images(shot_idx), size))
    test_labels = torch.from_numpy(labels[test_idx])
    shot_labels = torch.from_numpy(labels[shot_idx])
    text_features = zero_shot_weights(model, task.classnames)
    prototypes = F.normalize(torch.stack([shot_features[shot_labels == c].mean(0) for c in range(num_classes)]), dim=-1)

    def accuracy(class_weights, classes):
        classes = torch.tensor(classes)
        keep = torch.isin(test_labels, classes)
        scores = test_features[keep] @ class_weights[classes].t()
        return round(100.0 * (classes[scores.argmax(-1)] == test_labels[keep]).double().mean().item(), 2)

    halves = {"base": task.base_labels, "new": task.new_labels, "all": list(range(num_classes))}
    return {
        "zero_shot": {name: accuracy(text_features, classes) for name, classes in halves.items()},
        "16_shot_class_mean": {name: accuracy(prototypes, classes) for name, classes in halves.items()},
        "num_test_images": int(len(test_idx)),
        "num_classes": {name: len(classes) for name, classes in halves.items()},
    }


def accuracy_table(metrics):
    """The lines that print ``evaluate``'s accuracies: one row per classifier, columns base, new, all."""
    counts = metrics["num_classes"]
    lines = [f"accuracy (%) on the downstream test split ({metrics['num_test_images']} images), "
             f"each half among its own {counts['base']} classes:",
             f"{'':28s}{'base':>8s}{'new':>8s}{'all ' + str(counts['all']):>8s}"]
    for name, title in (("zero_shot", f'zero-shot "{ZERO_SHOT_TEMPLATE}"'),
                        ("16_shot_class_mean", "16-shot class-mean probe")):
        row = metrics[name]
        lines.append(f"{title:28s}{row['base']:8.1f}{row['new']:8.1f}{row['all']:8.1f}")
    return lines
