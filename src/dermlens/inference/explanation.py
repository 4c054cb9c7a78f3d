"""`Explanation`: a prediction with what to show beside it, the Grad-CAM heatmap and the lesion outline.

Everything is measured on the image the model saw (resized, colour-corrected: ``view``), so the heatmap,
the outline and the diameter in pixels all refer to the same picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dermlens.inference.predictor import Prediction
    from dermlens.segmentation.abcd import ABCDFeatures
    from dermlens.segmentation.lesion import LesionMask


@dataclass(frozen=True)
class Explanation:
    """A `Prediction` and, where available, the view, its heatmap, the lesion mask and its ABCD features.

    ``heatmap`` (float32, the view's height x width, in [0, 1]) is for ``heatmap_class``: the class the
    model names (``prediction.decision``). It is None for a rejected image or a model exported without
    class maps; ``lesion`` and ``abcd`` are None for a rejected image, ``abcd`` also when no lesion
    was found.
    """

    prediction: Prediction
    view: np.ndarray | None = None
    heatmap: np.ndarray | None = None
    heatmap_class: str | None = None
    lesion: LesionMask | None = None
    abcd: ABCDFeatures | None = None

    def images(self) -> dict[str, str]:
        """PNG data URLs: ``image`` (the view), ``heatmap`` (over the view), ``mask`` (the outline), as available.

        >>> Predictor.load().explain("lesion.jpg").images().keys()   # doctest: +SKIP
        dict_keys(['image', 'heatmap', 'mask'])
        """
        from dermlens.explain.heatmap import overlay_heatmap, png_data_url
        from dermlens.segmentation.abcd import outline_overlay

        if self.view is None:
            return {}
        images = {"image": png_data_url(self.view)}
        if self.heatmap is not None:
            images["heatmap"] = png_data_url(overlay_heatmap(self.view, self.heatmap))
        if self.lesion is not None and self.lesion.found:
            images["mask"] = png_data_url(outline_overlay(self.view, self.lesion.mask))
        return images

    def details(self, *, images: bool = True) -> dict:
        """What explains the prediction, JSON-ready: the heatmap's class, the lesion, its ABCD features and
        (``images``) the PNG data URLs ``image``, ``heatmap`` and ``mask``, None where not available."""
        out = {
            "heatmap_class": self.heatmap_class,
            "lesion": None if self.lesion is None else self.lesion.to_dict(),
            "abcd": None if self.abcd is None else self.abcd.to_dict(),
        }
        if images:
            out.update({"image": None, "heatmap": None, "mask": None, **self.images()})
        return out

    def to_dict(self, top_k: int | None = None, *, images: bool = True) -> dict:
        """The prediction's dictionary with an ``explanation`` entry (`details`)."""
        return {**self.prediction.to_dict(top_k), "explanation": self.details(images=images)}
