from dassl.data.datasets import DATASET_REGISTRY

from .base import CoOpDataset


@DATASET_REGISTRY.register()
class OxfordPets(CoOpDataset):
    """Oxford-IIIT Pets; CoOp's fixed split file."""

    dataset_dir = "oxford_pets"
    image_dir = "images"
    split_file = "split_zhou_OxfordPets.json"
