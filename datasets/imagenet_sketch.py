from dassl.data.datasets import DATASET_REGISTRY

from .imagenet import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetSketch(ImageNetVariant):
    """ImageNet-Sketch (test only): ``images/<wnid>/``, 1000 classes."""

    dataset_dir = "imagenet-sketch"
    image_dir = "images"
