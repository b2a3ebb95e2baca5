from dassl.data.datasets import DATASET_REGISTRY

from .base import CoOpDataset


@DATASET_REGISTRY.register()
class StanfordCars(CoOpDataset):
    """Stanford Cars (split paths start with cars_train/ or cars_test/); CoOp's fixed split file."""

    dataset_dir = "stanford_cars"
    image_dir = ""
    split_file = "split_zhou_StanfordCars.json"
