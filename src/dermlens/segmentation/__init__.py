"""Lesion segmentation and the ABCD features of its outline (numpy and scipy only)."""

from dermlens.segmentation.abcd import ABCDFeatures, abcd_features, outline_overlay
from dermlens.segmentation.lesion import LesionMask, segment_lesion

__all__ = ["ABCDFeatures", "LesionMask", "abcd_features", "outline_overlay", "segment_lesion"]
