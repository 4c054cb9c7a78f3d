"""Training jobs in their own process: ``python -m dermlens.projects.jobs`` trains every queued
iteration, then exits.

The web server starts one when an iteration is queued (`start_worker`), detached, so a slow training
never blocks a request and a restarted server does not kill it. Any machine that shares the database
and the object store can run the same command to take jobs from the queue (`Iterations.claim`).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("dermlens.projects")


def check_can_train() -> None:
    """Refuse, with what to install, when this machine cannot train (the base install has no torch)."""
    import importlib.util

    from dermlens.projects.errors import Invalid

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("timm") is None:
        raise Invalid("training an iteration needs PyTorch, which this install of dermlens lacks: "
                      "pip install 'dermlens[train]' (or run `dermlens project worker` on a machine that has it, "
                      "with DERMLENS_START_WORKERS=false here)")


def start_worker(data_dir: Path, database_url: str, log_path: Path | None = None) -> subprocess.Popen:
    """Start a detached worker process on the workspace; it exits when the queue is empty."""
    env = {**os.environ, "DERMLENS_DATA_DIR": str(data_dir), "DERMLENS_DATABASE_URL": database_url,
           "DERMLENS_QUIET": "1"}
    log_path = log_path or Path(data_dir) / "worker.log"
    with open(log_path, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "dermlens.projects.jobs"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def run_queue(workspace) -> int:
    """Train queued iterations until none is left; -> how many ran."""
    from dermlens.projects.training import train_next

    workspace.iterations.recover_interrupted()
    count = 0
    while (done := train_next(workspace.iterations)) is not None:
        count += 1
        log.warning("iteration %s of project %s: %s (%s)", done.number, done.project_id, done.status, done.message)
    return count


def main() -> None:
    from dermlens.projects.workspace import Workspace

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    workspace = Workspace.open(os.environ.get("DERMLENS_DATA_DIR"), os.environ.get("DERMLENS_DATABASE_URL"))
    run_queue(workspace)


if __name__ == "__main__":
    main()
