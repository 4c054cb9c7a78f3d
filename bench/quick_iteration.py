"""How long a quick iteration takes here (issue 5 target: under 2 minutes on 600 images).

    python bench/quick_iteration.py [--per-tag 300] [--tags akiec bkl] [--data-dir DIR]

Makes a project in a fresh data directory with real HAM10000 images (``--per-tag`` of each tag: 300
of akiec and of bkl by default, 600 in all), then times, through the same code the web app's
training job runs: the upload (decode, strip metadata, store), a first quick iteration (features
computed for every image, the head cross-validated, the ONNX export, suggestions) and a second one
on the same images (features read back from the store). Prints the figures and the metrics.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HAM = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ham10000"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-tag", type=int, default=300)
    parser.add_argument("--tags", nargs="+", default=["akiec", "bkl"])
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("DERMLENS_QUIET", "1")
    if not HAM.is_dir():
        sys.exit(f"HAM10000 not found at {HAM}")

    from dermlens.projects.intake import prepare_image
    from dermlens.projects.metrics import metrics_at
    from dermlens.projects.training import train_next
    from dermlens.projects.workspace import Workspace

    with open(HAM / "labels.csv", newline="") as labels:
        rows = list(csv.DictReader(labels))
    workspace = Workspace.open(args.data_dir or tempfile.mkdtemp(prefix="dermlens-bench-"))
    project, _ = workspace.store.create_project(f"bench {' vs '.join(args.tags)} {time.time():.0f}")
    started = time.perf_counter()
    for tag in workspace.store.add_tags(project.id, args.tags):
        chosen = [r for r in rows if r["label"] == tag.name][:args.per_tag]
        for row in chosen:
            data = (HAM / "images" / f"{row['image_id']}.jpg").read_bytes()
            workspace.store.add_image(project.id, prepare_image(data, row["image_id"]), tag_ids=[tag.id])
    upload = time.perf_counter() - started
    n_images = sum(workspace.store.tag_counts(project.id).values())
    figures = {"images": n_images, "upload_seconds": round(upload, 1)}
    for run in ("first", "second"):
        workspace.iterations.queue(project.id, "quick")
        started = time.perf_counter()
        done = train_next(workspace.iterations)
        figures[f"{run}_iteration_seconds"] = round(time.perf_counter() - started, 1)
        if done.status != "completed":
            sys.exit(f"iteration failed: {done.message}")
    metrics = metrics_at(done.metrics, 0.5)
    figures.update(mean_average_precision=round(metrics["mean_average_precision"], 3),
                   accuracy_at_0_5=round(metrics["accuracy"], 3),
                   per_tag={t["tag"]: {"precision": t["precision"], "recall": t["recall"],
                                       "average_precision": round(t["average_precision"], 3)}
                            for t in metrics["tags"]},
                   validation=metrics["validation"], target_seconds=120,
                   meets_target=figures["first_iteration_seconds"] < 120)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
