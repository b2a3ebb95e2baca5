from dassl.data.datasets import DATASET_REGISTRY

from clipprompt.data.splits import read_classnames

from .imagenet import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetV2(ImageNetVariant):
    """ImageNetV2 matched-frequency (test only).

    Its class folders are named by ImageNet label (``0`` .. ``999``); the class
    name of label ``i`` is line ``i`` of ``classnames.txt``.
    """

    dataset_dir = "imagenetv2"
    image_dir = "imagenetv2-matched-frequency-format-val"

    def read_splits(self, cfg):
        self.require_dir(self.image_dir)
        classnames = list(read_classnames(self.classnames_path()).values())
        classes = [(str(label), label, classname) for label, classname in enumerate(classnames)]
        return [], None, self.read_class_folders(classes)
