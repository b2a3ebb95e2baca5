from dassl.data.datasets import DATASET_REGISTRY

from .base import CoOpDataset


@DATASET_REGISTRY.register()
class UCF101(CoOpDataset):
    """UCF101, one middle frame per video; CoOp's fixed split file."""

    dataset_dir = "ucf101"
    image_dir = "UCF-101-midframes"
    split_file = "split_zhou_UCF101.json"
