"""One upload in, one `Assessment` out: decode, predict (and explain), keep if asked, assess.

Shared by the REST API and the pages so both answer alike. It holds only what is loaded once (the
predictor, the condition catalogue, the optional store); nothing about a request outlives it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from dermlens.api.settings import ServeSettings
from dermlens.api.uploads import decode_upload
from dermlens.inference.assessment import Assessment, PatientDetails, assess
from dermlens.inference.predictor import Predictor
from dermlens.knowledge.catalogue import Catalogue
from dermlens.storage import ObjectStore

UPLOAD_NAME = "upload"  # the caller's file name is never used: it could identify a person


@dataclass
class Checked:
    assessment: Assessment
    explanation: object | None  # dermlens.inference.predictor.Explanation when asked for
    kept_as: str | None


class AssessmentService:
    def __init__(self, predictor: Predictor, catalogue: Catalogue, settings: ServeSettings,
                 store: ObjectStore | None = None) -> None:
        self.predictor, self.catalogue, self.settings, self.store = predictor, catalogue, settings, store

    def check(self, data: bytes | None, content_type: str | None, details: PatientDetails, *,
              explain: bool = False, keep: bool = False) -> Checked:
        pixels = decode_upload(data, content_type, max_bytes=self.settings.max_upload_bytes,
                               max_pixels=self.settings.max_pixels)
        kept_as = self._keep(pixels) if keep and self.store is not None else None
        if explain:
            explanation = self.predictor.explain(pixels, name=UPLOAD_NAME)
            prediction = explanation.prediction
        else:
            explanation, prediction = None, self.predictor.predict(pixels, name=UPLOAD_NAME)
        return Checked(assess(prediction, details, self.catalogue), explanation, kept_as)

    def _keep(self, pixels) -> str:
        """Store the pixels as PNG under their hash: no EXIF, no file name, one copy per image."""
        from dermlens.explain.heatmap import to_png

        png = to_png(pixels)
        key = hashlib.sha256(png).hexdigest() + ".png"
        if not self.store.exists(key):
            self.store.put(key, png)
        return key
