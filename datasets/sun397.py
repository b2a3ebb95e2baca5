from dassl.data.datasets import DATASET_REGISTRY

from .base import CoOpDataset


@DATASET_REGISTRY.register()
class SUN397(CoOpDataset):
    """SUN397; CoOp's fixed split file."""

    dataset_dir = "sun397"
    image_dir = "SUN397"
    split_file = "split_zhou_SUN397.json"
