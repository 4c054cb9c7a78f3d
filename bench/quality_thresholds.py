"""Measure the image-quality gates on real dermoscopic images: how many would each gate turn away?

    python bench/quality_thresholds.py [--data ../shared/datasets/ham10000] [--data ...]

Prints percentiles of sharpness and brightness per dataset and the share each default threshold
(`dermlens.inference.quality.QualityThresholds`) rejects. The thresholds are set so that HAM10000
loses almost nothing (figures in docs/model-card.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dermlens.data.images import load_rgb
from dermlens.data.readers import read_dataset
from dermlens.inference.quality import QualityThresholds, measure_quality, quality_issue
from dermlens.progress import track

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", type=Path,
                        help="dataset folder (repeatable); default: HAM10000 and the external ISIC set")
    args = parser.parse_args()
    shared = HERE.parent.parent / "shared" / "datasets"
    folders = args.data or [shared / "ham10000", shared / "isic_archive_external"]
    thresholds = QualityThresholds()
    print(f"thresholds: {thresholds.to_dict()}")
    for folder in folders:
        dataset = read_dataset(folder)
        measures = [measure_quality(load_rgb(p)) for p in track(dataset.paths, f"Measuring {folder.name}",
                                                                total=len(dataset))]
        sharp = np.array([m.sharpness for m in measures])
        bright = np.array([m.brightness for m in measures])
        issues = [quality_issue(m, thresholds) for m in measures]
        print(f"\n{folder.name}: {len(measures)} images")
        for name, values in (("sharpness", sharp), ("brightness", bright)):
            qs = np.percentile(values, [0, 0.1, 0.5, 1, 50, 99, 99.5, 99.9, 100])
            print(f"  {name:10s} min {qs[0]:.1f}  p0.1 {qs[1]:.1f}  p0.5 {qs[2]:.1f}  p1 {qs[3]:.1f}  "
                  f"median {qs[4]:.1f}  p99 {qs[5]:.1f}  p99.5 {qs[6]:.1f}  p99.9 {qs[7]:.1f}  max {qs[8]:.1f}")
        for issue in ("too_small", "too_dark", "too_bright", "blurry"):
            count = sum(i == issue for i in issues)
            print(f"  rejected as {issue:10s}: {count} ({count / len(issues):.2%})")
        total = sum(i is not None for i in issues)
        print(f"  rejected in all: {total} ({total / len(issues):.2%})")


if __name__ == "__main__":
    main()
