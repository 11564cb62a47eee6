"""Datasets: image lists, ImageNet and OOD folder layouts, protocols, few-shot sampling, demo data.

Every dataset is an `ImageSet` (paths + integer labels under one root). ``data_root`` is the folder
that contains ``ImageNet1k/``, ``iNaturalist/``, ``SUN/``, ``Places/``, ``dtd/`` (and ``demo/``);
see docs/datasets.md for the layouts.
"""

from .demo import (
    FASHION_CLASSES,
    ID_CLASSES,
    NEAR_OOD_CLASSES,
    DemoData,
    demo_sets,
    load_digits_images,
    load_fashion_subset,
    materialize_demo,
)
from .downloads import CifarData, DownloadError, cifar, fashion_mnist_full
from .folders import OOD_EXPECTED_COUNTS, OOD_SETS, image_folder, ood_folder, scan_images
from .imagenet import ClassInfo, find_val_csv, imagenet_classes, imagenet_split, synset_to_index
from .imageset import IMAGE_EXTS, ImageSet
from .layout import LayoutError
from .protocols import HardOODSets, Protocol, hard_ood_sets, protocol, protocol_about, protocol_names
from .sampling import class_subset, few_shot_split

__all__ = [
    "FASHION_CLASSES",
    "ID_CLASSES",
    "IMAGE_EXTS",
    "NEAR_OOD_CLASSES",
    "OOD_EXPECTED_COUNTS",
    "OOD_SETS",
    "CifarData",
    "ClassInfo",
    "DemoData",
    "DownloadError",
    "HardOODSets",
    "ImageSet",
    "LayoutError",
    "Protocol",
    "cifar",
    "class_subset",
    "demo_sets",
    "fashion_mnist_full",
    "few_shot_split",
    "find_val_csv",
    "hard_ood_sets",
    "image_folder",
    "imagenet_classes",
    "imagenet_split",
    "load_digits_images",
    "load_fashion_subset",
    "materialize_demo",
    "ood_folder",
    "protocol",
    "protocol_about",
    "protocol_names",
    "scan_images",
    "synset_to_index",
]
