"""Datasets: one reader contract (`LabelledImages`) for every layout, grouped splits, image loading."""

from dermlens.data.dataset import LabelledImages
from dermlens.data.labels import HAM10000_CLASSES, ISIC_COLUMNS, display_name

__all__ = ["LabelledImages", "HAM10000_CLASSES", "ISIC_COLUMNS", "display_name"]
