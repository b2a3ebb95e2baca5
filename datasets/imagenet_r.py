from dassl.data.datasets import DATASET_REGISTRY

from .imagenet import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetR(ImageNetVariant):
    """ImageNet-R (test only): ``imagenet-r/<wnid>/``, 200 of the ImageNet classes."""

    dataset_dir = "imagenet-rendition"
    image_dir = "imagenet-r"
