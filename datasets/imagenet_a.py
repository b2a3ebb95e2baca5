from dassl.data.datasets import DATASET_REGISTRY

from .imagenet import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetA(ImageNetVariant):
    """ImageNet-A (test only): ``imagenet-a/<wnid>/``, 200 of the ImageNet classes."""

    dataset_dir = "imagenet-adversarial"
    image_dir = "imagenet-a"
