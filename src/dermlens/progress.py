"""Progress bars for long work (image loading, feature extraction, training, batch prediction).

The core calls `track`; it draws a Rich bar on the terminal and stays quiet when
``DERMLENS_QUIET=1`` (tests, servers) so logs are not flooded.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def quiet() -> bool:
    return os.environ.get("DERMLENS_QUIET", "") not in ("", "0")


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar: elapsed time, rate and time remaining."""
    if quiet():
        yield from items
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, transient=False) as progress:
        yield from progress.track(items, total=total, description=description)


def say(message: str) -> None:
    """One line of status for a person (stderr), unless quiet."""
    if not quiet():
        from rich.console import Console

        Console(stderr=True).print(message, highlight=False, markup=False)
