"""An experiment: a grid of training runs that differ in a few settings, on one shared split.

File format (YAML, ``configs/experiments/NAME.yaml``)::

    title: Transfer learning versus training from scratch
    question: Does ImageNet pretraining beat random initialisation at the same budget?
    base: ../budget.yaml          # a run config (relative to this file); settings below override it
    data: ../shared/datasets/ham10000
    seeds: [0, 1]                 # every run once per seed; the split stays the same
    max_minutes: 12               # time budget of each run
    settings:                     # for every run
      data.height: 150
    runs:                         # name: the settings that make this run different
      transfer: {model.pretrained: true}
      scratch: {model.pretrained: false, training.finetune: all}
    compare:                      # paired bootstrap comparisons (default: each run against the first)
      - [transfer, scratch]
    tta: false                    # also evaluate every run with flip test-time augmentation
    external: ../shared/datasets/isic_archive_external   # also evaluate every run on other data
                                  # (its images of the run's classes; never trained on)

A setting may name another run's best checkpoint as ``{run:NAME}`` (two-stage transfer:
``model.weights_path: "{run:pretrain}"``); that run is trained first, with the same seed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dermlens.errors import ConfigError

_REFERENCE = re.compile(r"\{run:([A-Za-z0-9_.-]+)\}")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_KEYS = {"title", "question", "base", "data", "seeds", "max_minutes", "settings", "runs", "compare", "tta",
         "external"}


@dataclass(frozen=True)
class RunSpec:
    """One configuration of the grid: its name and the settings that make it different."""

    name: str
    settings: dict[str, Any]

    @property
    def uses(self) -> tuple[str, ...]:
        """The runs whose checkpoints this one's settings name."""
        return tuple(m for value in self.settings.values() for m in _REFERENCE.findall(str(value)))


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    question: str
    base: Path | None
    data: str
    seeds: tuple[int, ...]
    max_minutes: float
    settings: dict[str, Any]
    runs: tuple[RunSpec, ...]  # in training order: a run comes after the runs it uses
    compare: tuple[tuple[str, str], ...]
    tta: bool = False
    external: str = ""  # a labelled dataset every run is also evaluated on

    def run(self, name: str) -> RunSpec:
        return next(r for r in self.runs if r.name == name)

    def overrides(self, run: RunSpec, checkpoints: dict[str, Path]) -> list[str]:
        """``key=value`` overrides for `load_config`: the shared settings, then the run's own, with
        ``{run:NAME}`` replaced by that run's best checkpoint."""
        merged = {**self.settings, **run.settings}
        items = []
        for key, value in merged.items():
            if isinstance(value, str):
                value = _REFERENCE.sub(lambda m: str(checkpoints[m.group(1)]), value)
            items.append(f"{key}={json.dumps(value)}")  # JSON is YAML: load_config reads it back
        return items


def load_experiment(path: str | Path) -> Experiment:
    """Read and check an experiment file (format in the module docstring).

    >>> import tempfile
    >>> file = Path(tempfile.mkdtemp()) / "tiny.yaml"
    >>> _ = file.write_text("runs: {a: {training.epochs: 1}, b: {training.epochs: 2}}")
    >>> experiment = load_experiment(file)
    >>> [r.name for r in experiment.runs], experiment.compare
    (['a', 'b'], (('a', 'b'),))
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment file {path} does not exist")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path} must hold a mapping with at least 'runs'")
    unknown = sorted(set(document) - _KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; known: {sorted(_KEYS)}")
    runs = _runs(path, document.get("runs"))
    names = [str(name) for name in document["runs"]]  # as written: the first is the reference
    compare = _pairs(path, document.get("compare"), names)
    base = document.get("base")
    seeds = document.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"{path}: seeds must be a list of integers, got {seeds!r}")
    settings = _mapping(path, document.get("settings") or {}, "settings")
    experiment = Experiment(
        name=path.stem, title=str(document.get("title", path.stem)),
        question=str(document.get("question", "")).strip(),
        base=(path.parent / base).resolve() if base else None, data=str(document.get("data", "")),
        seeds=tuple(seeds), max_minutes=float(document.get("max_minutes", 0) or 0),
        settings=settings, runs=runs, compare=compare, tta=bool(document.get("tta", False)),
        external=str(document.get("external") or ""))
    _check_settings(path, experiment)
    return experiment


def _mapping(path: Path, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {where} must be a mapping of setting: value, got {value!r}")
    return {str(k): v for k, v in value.items()}


def _runs(path: Path, value: Any) -> tuple[RunSpec, ...]:
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{path}: 'runs' must map each run's name to its settings (at least one run)")
    specs = {}
    for name, settings in value.items():
        if not _NAME.match(str(name)):
            raise ConfigError(f"{path}: run name {name!r} may use letters, digits, '_', '-' and '.' only")
        specs[str(name)] = RunSpec(str(name), _mapping(path, settings or {}, f"runs.{name}"))
    ordered: list[RunSpec] = []

    def visit(spec: RunSpec, chain: tuple[str, ...]) -> None:
        if spec in ordered:
            return
        if spec.name in chain:
            raise ConfigError(f"{path}: runs use each other's checkpoints in a circle: "
                              f"{' -> '.join(chain + (spec.name,))}")
        for used in spec.uses:
            if used not in specs:
                raise ConfigError(f"{path}: run {spec.name!r} uses {{run:{used}}}, which is not a run here")
            visit(specs[used], chain + (spec.name,))
        ordered.append(spec)

    for spec in specs.values():
        visit(spec, ())
    return tuple(ordered)


def _pairs(path: Path, value: Any, names: list[str]) -> tuple[tuple[str, str], ...]:
    if value is None:
        return tuple((names[0], other) for other in names[1:])
    pairs = []
    for pair in value if isinstance(value, list) else [value]:
        if not isinstance(pair, list) or len(pair) != 2 or not all(p in names for p in pair):
            raise ConfigError(f"{path}: each entry of 'compare' must be a pair of run names from "
                              f"{names}, got {pair!r}")
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)


def _check_settings(path: Path, experiment: Experiment) -> None:
    """Every run's config must load now, not after hours of training the runs before it."""
    from dermlens.training.config import load_config

    placeholders = {r.name: Path(f"{r.name}.pt") for r in experiment.runs}
    for run in experiment.runs:
        try:
            load_config(experiment.base, experiment.overrides(run, placeholders))
        except ConfigError as error:
            raise ConfigError(f"{path}: run {run.name!r}: {error}") from None
