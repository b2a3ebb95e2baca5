from dassl.data.datasets import DATASET_REGISTRY

from .base import CoOpDataset


@DATASET_REGISTRY.register()
class DescribableTextures(CoOpDataset):
    """DTD, the Describable Textures Dataset; CoOp's fixed split file."""

    dataset_dir = "dtd"
    image_dir = "images"
    split_file = "split_zhou_DescribableTextures.json"
