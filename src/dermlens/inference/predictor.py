"""`Predictor`: an image in, a safe answer out, on ONNX Runtime without torch.

Every image passes the same gates in order, and the first one it fails decides the answer:

1. decoding (``not_an_image``, ``unreadable``, ``too_large``);
2. image quality (``too_small``, ``too_dark``, ``too_bright``, ``blurry``);
3. the not-skin check on the model's own features (``not_skin``);
4. abstention: a top probability below the model's validated threshold is ``uncertain``, and so is an
   image where the model's decision rule (which favours classes rare in training, such as melanoma;
   `dermlens.inference.decision`) names another class than the most probable one.

Only an image that passes all of them gets status ``ok``. Rejected images carry no probabilities, so
nothing downstream can mistake a photo of a cat for a naevus.

`Predictor.explain` gives the same answer with what to show beside it (`Explanation`): the Grad-CAM
heatmap from the model's ``class_maps`` output, computed in the same ONNX Runtime pass, and the lesion
outline with its ABCD features. `Predictor.predict` never asks for the class maps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dermlens import DISCLAIMER
from dermlens.data.images import ImageReadError, load_rgb
from dermlens.data.labels import display_name
from dermlens.inference.calibration import softmax
from dermlens.inference.decision import decide
from dermlens.inference.explanation import Explanation
from dermlens.inference.onnx_model import CLASS_MAPS, OnnxModel
from dermlens.inference.quality import ISSUE_MESSAGES, measure_quality, quality_issue
from dermlens.inference.tta import flip_views

Status = Literal["ok", "uncertain", "rejected"]
ImageSource = str | Path | bytes | np.ndarray

DEFAULT_MODEL = "default"
SEE_A_DERMATOLOGIST = ("The model is not sure about this image. Please show the lesion to a "
                       "dermatologist rather than rely on this result.")
CANNOT_RULE_OUT = ("The most likely class is {likely}, but {decision} cannot be ruled out. Please show "
                   "the lesion to a dermatologist.")
NOT_SKIN_MESSAGE = ("This does not look like a dermoscopic image of skin, so it was not classified. "
                    "dermlens only judges close-up (dermoscopic) images of a skin lesion.")
READ_MESSAGES = {
    "not_an_image": "The file is not an image dermlens can read (use JPEG, PNG, TIFF, BMP or WebP).",
    "unreadable": "The image could not be read; it may be truncated or damaged.",
    "too_large": "The image has too many pixels to decode safely; downscale it first.",
}


def default_model_path() -> Path:
    """The model bundled inside the package (see docs/model-card.md)."""
    return Path(__file__).resolve().parent.parent / "assets" / "default-model.onnx"


@dataclass(frozen=True)
class RankedClass:
    code: str
    name: str
    probability: float


@dataclass(frozen=True)
class Prediction:
    """The answer for one image. ``probabilities`` is empty when the image was rejected."""

    image: str
    status: Status
    reason: str | None
    message: str
    probabilities: dict[str, float] = field(default_factory=dict)
    top: tuple[RankedClass, ...] = ()
    decision: str | None = None  # the class the model names (see dermlens.inference.decision)
    not_skin_score: float | None = None
    disclaimer: str = DISCLAIMER

    def to_dict(self, top_k: int | None = None) -> dict[str, Any]:
        return {"image": self.image, "status": self.status, "reason": self.reason,
                "message": self.message,
                "probabilities": self.probabilities or None,
                "top": [{"code": c.code, "name": c.name, "probability": c.probability}
                        for c in self.top[:top_k]],
                "decision": self.decision, "not_skin_score": self.not_skin_score, "disclaimer": self.disclaimer}


def _rejected(image: str, reason: str, message: str, score: float | None = None) -> Prediction:
    return Prediction(image=image, status="rejected", reason=reason, message=message, not_skin_score=score)


class Predictor:
    """Classify skin-lesion images with an exported dermlens model.

    >>> predictor = Predictor.load()                       # doctest: +SKIP
    >>> predictor.predict("lesion.jpg").status             # doctest: +SKIP
    'ok'
    """

    def __init__(self, model: OnnxModel, *, tta: bool = False) -> None:
        self.model = model
        self.tta = tta

    @classmethod
    def load(cls, path: str | Path | None = None, *, tta: bool = False, threads: int = 0) -> Predictor:
        """Open an exported model; ``None`` or ``"default"`` is the model bundled with dermlens."""
        if path is None or str(path) == DEFAULT_MODEL:
            path = default_model_path()
        return cls(OnnxModel.load(path, threads=threads), tta=tta)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.model.classes

    def predict(self, source: ImageSource, name: str | None = None) -> Prediction:
        """One image (a path, its bytes, or a uint8 RGB array) -> a `Prediction`."""
        return self.predict_many([source], names=None if name is None else [name], progress=False)[0]

    def predict_many(self, sources: Sequence[ImageSource], *, names: Sequence[str] | None = None,
                     batch_size: int = 16, progress: bool = True) -> list[Prediction]:
        """Many images in batches; a bad one gets its own rejected answer and never stops the rest."""
        from dermlens.progress import track

        names = list(names) if names is not None else [_name_of(s) for s in sources]
        results: list[Prediction | None] = [None] * len(sources)
        chunks = [range(i, min(i + batch_size, len(sources))) for i in range(0, len(sources), batch_size)]
        steps: Iterable = track(chunks, "Predicting", total=len(chunks)) if progress else chunks
        for chunk in steps:
            ready: list[int] = []
            pixels: list[np.ndarray] = []
            for i in chunk:
                checked = self._checked_pixels(sources[i], names[i])
                if isinstance(checked, Prediction):
                    results[i] = checked
                else:
                    ready.append(i)
                    pixels.append(checked)
            if ready:
                predictions, _ = self._classify(np.stack(pixels), [names[i] for i in ready])
                for i, prediction in zip(ready, predictions):
                    results[i] = prediction
        return [r for r in results if r is not None]

    def explain(self, source: ImageSource, name: str | None = None) -> Explanation:
        """`predict`, plus the Grad-CAM heatmap of the class the model names and the lesion's outline
        and ABCD features, all on the image the model saw: one ONNX Runtime pass, as `predict`, then about
        25 ms of segmentation and measurement (on 2 CPUs).

        >>> explanation = Predictor.load().explain("lesion.jpg")    # doctest: +SKIP
        >>> explanation.abcd.colour_count, explanation.images()["heatmap"][:22]   # doctest: +SKIP
        (2, 'data:image/png;base64,')
        """
        from dermlens.explain.heatmap import class_heatmap
        from dermlens.segmentation.abcd import abcd_features
        from dermlens.segmentation.lesion import segment_lesion

        name = _name_of(source) if name is None else name
        view = self._checked_pixels(source, name)
        if isinstance(view, Prediction):
            return Explanation(view)
        predictions, class_maps = self._classify(view[None], [name], class_maps=self.model.has_class_maps)
        prediction = predictions[0]
        if prediction.status == "rejected":
            return Explanation(prediction, view=view)
        heatmap_class = prediction.decision  # every unrejected answer names one
        heatmap = None
        if class_maps is not None:
            heatmap = class_heatmap(class_maps[0, self.classes.index(heatmap_class)], view.shape[:2])
        lesion = segment_lesion(view)
        abcd = abcd_features(view, lesion.mask) if lesion.found else None
        return Explanation(prediction, view=view, heatmap=heatmap,
                           heatmap_class=heatmap_class if heatmap is not None else None, lesion=lesion, abcd=abcd)

    def _checked_pixels(self, source: ImageSource, name: str) -> np.ndarray | Prediction:
        """The model-ready uint8 image, or the rejection that stops it before the model."""
        try:
            rgb = source if isinstance(source, np.ndarray) else load_rgb(source)
        except ImageReadError as error:
            return _rejected(name, error.reason, READ_MESSAGES.get(error.reason, str(error)))
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            return _rejected(name, "not_an_image", "Expected an RGB image (height x width x 3, uint8).")
        thresholds = self.model.gates.quality
        issue = quality_issue(measure_quality(rgb), thresholds)
        if issue is not None:
            return _rejected(name, issue, ISSUE_MESSAGES[issue].format(**thresholds.to_dict()))
        return self.model.preprocessing.prepare(rgb)

    def _classify(self, pixels: np.ndarray, names: list[str], *,
                  class_maps: bool = False) -> tuple[list[Prediction], np.ndarray | None]:
        """Answers for uint8 (N, H, W, 3) model-ready images, and their class maps if asked for
        (from the image as given, in the same pass; with test-time augmentation, not from the flips)."""
        batch = self.model.preprocessing.normalize(pixels)
        views = flip_views(batch) if self.tta else [batch]
        wanted = self.model.serving_outputs + ([CLASS_MAPS] if class_maps else [])
        first = self.model.run_outputs(views[0], wanted)
        logits = np.mean([first["logits"]] + [self.model.run(view)[0] for view in views[1:]], axis=0)
        # the not-skin score of the image as given (flips would only blur a clear-cut distance)
        scores = first.get("not_skin_score")
        probabilities = softmax(logits, self.model.temperature)
        decisions = decide(logits, self.model.decision_bias)
        gates = self.model.gates
        predictions = []
        for row, name in enumerate(names):
            score = None if scores is None else float(scores[row])
            if self.model.has_not_skin_check and score is not None and score > gates.not_skin_threshold:
                predictions.append(_rejected(name, "not_skin", NOT_SKIN_MESSAGE, score))
                continue
            predictions.append(self._answer(name, probabilities[row], int(decisions[row]), score))
        return predictions, first.get(CLASS_MAPS)

    def _answer(self, name: str, probabilities: np.ndarray, decision: int, score: float | None) -> Prediction:
        order = np.argsort(-probabilities, kind="stable")
        ranked = tuple(RankedClass(self.classes[i], display_name(self.classes[i]), float(probabilities[i]))
                       for i in order)
        decided = self.classes[decision]
        if decided != ranked[0].code:
            reason, message = "rare_class_possible", CANNOT_RULE_OUT.format(
                likely=ranked[0].name, decision=display_name(decided))
        elif ranked[0].probability < self.model.gates.min_confidence:
            reason, message = "low_confidence", SEE_A_DERMATOLOGIST
        else:
            reason, message = None, f"Most similar to: {ranked[0].name} ({ranked[0].probability:.0%})."
        return Prediction(image=name, status="ok" if reason is None else "uncertain", reason=reason,
                          message=message,
                          probabilities={c: float(p) for c, p in zip(self.classes, probabilities)},
                          top=ranked, decision=decided, not_skin_score=score)


def _name_of(source: ImageSource) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return "<bytes>" if isinstance(source, bytes) else "<array>"
