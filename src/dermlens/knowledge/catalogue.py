"""The condition catalogue: one reviewed YAML file per condition, read into frozen dataclasses.

The text lives in ``knowledge/conditions/*.yaml`` so that a clinician can review and correct it without
touching code. Each file names the published sources it was written from (``references``) and says
honestly which of them its text was checked against (``review``). Loading validates every field and names
the file and the field when something is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from dermlens.data.labels import HAM10000_CLASSES
from dermlens.errors import DermlensError

RiskGroup = Literal["malignant", "pre-malignant", "benign", "inflammatory"]

#: The risk groups in the order the catalogue lists them (most serious first).
RISK_GROUPS: tuple[RiskGroup, ...] = get_args(RiskGroup)

DEFAULT_FOLDER = Path(__file__).resolve().parent / "conditions"

_TEXT_FIELDS = ("code", "name", "summary", "description", "severity", "see_a_doctor", "review")
_LIST_FIELDS = ("aliases", "causes", "signs")
_REQUIRED = (*_TEXT_FIELDS, *_LIST_FIELDS, "group", "model_class", "references")


class UnknownConditionError(DermlensError):
    """A condition code (or model class) that the catalogue does not hold."""


class KnowledgeFileError(DermlensError):
    """A condition file that is missing a field or has a field of the wrong kind."""


@dataclass(frozen=True)
class Reference:
    """A published source a condition page was written from."""

    title: str
    publisher: str
    url: str
    accessed: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Condition:
    """One condition page: what it is, causes, signs, how serious, when to see a doctor, and sources."""

    code: str
    name: str
    aliases: tuple[str, ...]
    group: RiskGroup
    model_class: str | None  # the HAM10000 class whose prediction stands for this condition, if any
    summary: str
    description: str
    causes: tuple[str, ...]
    signs: tuple[str, ...]
    severity: str
    see_a_doctor: str
    references: tuple[Reference, ...]
    review: str

    def to_dict(self) -> dict[str, Any]:
        """The full page, ready for JSON."""
        data = asdict(self)
        data.update(aliases=list(self.aliases), causes=list(self.causes), signs=list(self.signs),
                    references=[r.to_dict() for r in self.references])
        return data

    def summary_dict(self) -> dict[str, Any]:
        """The short form for a list of conditions."""
        return {"code": self.code, "name": self.name, "group": self.group,
                "model_class": self.model_class, "summary": self.summary}


def _sort_key(condition: Condition) -> tuple[int, str]:
    return RISK_GROUPS.index(condition.group), condition.name.casefold()


class Catalogue:
    """The conditions dermlens has pages for, most serious group first, then by name.

    >>> catalogue = load_catalogue()
    >>> catalogue.get("mel").name
    'Melanoma'
    >>> catalogue.for_model_class("akiec").code
    'akiec'
    """

    def __init__(self, conditions: Iterable[Condition]) -> None:
        self.conditions: tuple[Condition, ...] = tuple(sorted(conditions, key=_sort_key))
        self._by_code: dict[str, Condition] = {}
        self._by_model_class: dict[str, Condition] = {}
        for condition in self.conditions:
            if condition.code in self._by_code:
                raise KnowledgeFileError(f"Two condition files use the code {condition.code!r}.")
            self._by_code[condition.code] = condition
            if condition.model_class is not None:
                if condition.model_class in self._by_model_class:
                    other = self._by_model_class[condition.model_class].code
                    raise KnowledgeFileError(f"Conditions {other!r} and {condition.code!r} both claim the model "
                                             f"class {condition.model_class!r}; give it to one of them.")
                self._by_model_class[condition.model_class] = condition

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.conditions)

    def get(self, code: str) -> Condition:
        """The condition with this code (case and surrounding spaces are ignored)."""
        condition = self._by_code.get(str(code).strip().lower())
        if condition is None:
            raise UnknownConditionError(f"Unknown condition {code!r}; known codes: {', '.join(self.codes)}.")
        return condition

    def for_model_class(self, ham_code: str) -> Condition:
        """The condition a model's class stands for (``"akiec"`` -> the actinic keratosis page)."""
        condition = self._by_model_class.get(str(ham_code).strip().lower())
        if condition is None:
            raise UnknownConditionError(f"No condition stands for the model class {ham_code!r}; classes with a "
                                        f"page: {', '.join(sorted(self._by_model_class))}.")
        return condition

    def resolve(self, code: str) -> Condition:
        """The condition of a model's class or, failing that, of a catalogue code (such as ``scc``);
        an unknown one raises with the known codes."""
        condition = self._by_model_class.get(str(code).strip().lower())
        return condition if condition is not None else self.get(code)

    def __iter__(self) -> Iterator[Condition]:
        return iter(self.conditions)

    def __len__(self) -> int:
        return len(self.conditions)

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code.strip().lower() in self._by_code


def load_catalogue(folder: str | Path | None = None) -> Catalogue:
    """Read every ``*.yaml`` condition file in ``folder`` (default: the files shipped with dermlens).

    The default catalogue is read once per process and shared.
    """
    if folder is None:
        return _default_catalogue()
    return _read_folder(Path(folder))


@lru_cache(maxsize=1)
def _default_catalogue() -> Catalogue:
    return _read_folder(DEFAULT_FOLDER)


def _read_folder(folder: Path) -> Catalogue:
    paths = sorted(folder.glob("*.yaml"))
    if not paths:
        raise KnowledgeFileError(f"No condition files (*.yaml) in {folder}.")
    return Catalogue(read_condition(path) for path in paths)


def read_condition(path: str | Path) -> Condition:
    """One condition file -> a `Condition`; any problem names the file and the field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise KnowledgeFileError(f"{path.name}: not valid YAML ({error}).") from error
    if not isinstance(data, dict):
        raise KnowledgeFileError(f"{path.name}: expected a mapping of fields, got {type(data).__name__}.")
    return _condition_from(data, path.name)


def _condition_from(data: dict[str, Any], source: str) -> Condition:
    def fail(field: str, problem: str) -> KnowledgeFileError:
        return KnowledgeFileError(f"{source}: field {field!r} {problem}.")

    missing = [name for name in _REQUIRED if name not in data]
    if missing:
        raise fail(missing[0], "is missing" + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else ""))
    for name in _TEXT_FIELDS:
        if not isinstance(data[name], str) or not data[name].strip():
            raise fail(name, "must be non-empty text")
    for name in _LIST_FIELDS:
        items = data[name]
        if not isinstance(items, list) or not all(isinstance(item, str) and item.strip() for item in items):
            raise fail(name, "must be a list of non-empty text items")
        if name != "aliases" and not items:
            raise fail(name, "must list at least one item")
    if data["group"] not in RISK_GROUPS:
        raise fail("group", f"is {data['group']!r}; use one of {', '.join(RISK_GROUPS)}")
    model_class = data["model_class"]
    if model_class is not None and model_class not in HAM10000_CLASSES:
        raise fail("model_class", f"is {model_class!r}; use a HAM10000 code ({', '.join(HAM10000_CLASSES)}) or null")
    stem = source.rsplit(".", 1)[0]
    if source.endswith(".yaml") and data["code"] != stem:
        raise fail("code", f"is {data['code']!r} but the file is named {source}; they must match")
    return Condition(
        code=data["code"], name=data["name"].strip(), aliases=tuple(a.strip() for a in data["aliases"]),
        group=data["group"], model_class=model_class, summary=data["summary"].strip(),
        description=data["description"].strip(), causes=tuple(c.strip() for c in data["causes"]),
        signs=tuple(s.strip() for s in data["signs"]), severity=data["severity"].strip(),
        see_a_doctor=data["see_a_doctor"].strip(), references=_references(data["references"], fail),
        review=data["review"].strip())


def _references(items: Any, fail: Any) -> tuple[Reference, ...]:
    if not isinstance(items, list) or not items:
        raise fail("references", "must list at least one source")
    references = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise fail("references", f"item {number} must be a mapping with title, publisher and url")
        for key in ("title", "publisher", "url"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise fail("references", f"item {number} needs a non-empty {key!r}")
        unknown = set(item) - {"title", "publisher", "url", "accessed"}
        if unknown:
            raise fail("references", f"item {number} has unknown keys {sorted(unknown)}")
        accessed = item.get("accessed")
        references.append(Reference(title=item["title"].strip(), publisher=item["publisher"].strip(),
                                    url=item["url"].strip(), accessed=None if accessed is None else str(accessed)))
    if not any(r.url.startswith("https://") for r in references):
        raise fail("references", "needs at least one source with an https:// URL")
    return tuple(references)
