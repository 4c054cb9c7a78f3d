"""How often the predictor turns away non-skin images, and how rarely it turns away skin images.

    python bench/not_skin.py [--model default] [--split RUN/split.json]

Targets (issue 3): at least 90% of ordinary non-skin photos rejected, at most 2% of held-out HAM10000
images rejected as not skin. The non-skin probes come from `dermlens.evaluation.nonskin` (scikit-image
and matplotlib sample photos and crops of them, generated documents, screenshots, flat colours, noise,
patterns). HAM10000 images are the model's test split when --split is given, else all images; the
external ISIC images (other clinics, never trained on) show how the check treats unfamiliar cameras.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter, defaultdict
from pathlib import Path

os.environ.setdefault("DERMLENS_QUIET", "1")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def summarise(title: str, predictions) -> None:
    reasons = Counter(p.reason if p.status == "rejected" else p.status for p in predictions)
    rejected = sum(p.status == "rejected" for p in predictions)
    print(f"{title}: {len(predictions)} images, rejected {rejected} ({rejected / len(predictions):.1%}); "
          + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--split", type=Path, help="the model's split.json: use its test images")
    args = parser.parse_args()

    from dermlens.data.readers import read_dataset
    from dermlens.data.splits import load_split
    from dermlens.evaluation.nonskin import non_skin_images
    from dermlens.inference.predictor import Predictor

    predictor = Predictor.load(args.model)
    probes = non_skin_images()
    results = predictor.predict_many([p.rgb for p in probes], names=[p.name for p in probes], progress=False)
    summarise("non-skin probes", results)
    by_category: dict[str, list] = defaultdict(list)
    for probe, result in zip(probes, results):
        by_category[probe.category].append(result)
    for category, predictions in sorted(by_category.items()):
        missed = [p.image for p in predictions if p.status != "rejected"]
        print(f"  {category:12s} {len(predictions) - len(missed)}/{len(predictions)} rejected"
              + (f"; answered: {', '.join(missed)}" if missed else ""))
    not_skin = sum(p.reason == "not_skin" for p in results)
    reached = sum(p.reason not in ("too_small", "too_dark", "too_bright", "blurry") for p in results)
    print(f"  the not-skin check alone: {not_skin}/{reached} of the probes that passed the quality gates "
          f"({not_skin / max(reached, 1):.1%})")

    ham = read_dataset(SHARED / "ham10000")
    indices = load_split(args.split, ham).test if args.split else range(len(ham))
    held_out = predictor.predict_many([ham.paths[i] for i in indices])
    summarise("HAM10000 " + ("test split" if args.split else "(all)"), held_out)
    external = read_dataset(SHARED / "isic_archive_external")
    summarise("external ISIC (other clinics)", predictor.predict_many(list(external.paths)))


if __name__ == "__main__":
    main()
