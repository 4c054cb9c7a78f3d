"""Offline question answering over the condition pages: retrieval only, never generated text.

Every list item and paragraph of every condition file is a passage, tagged with its condition and section.
A question is matched against the passages with TF-IDF (word 1- and 2-grams, English stop words) and cosine
similarity (scikit-learn). A paragraph is matched sentence by sentence (its score is its best sentence), so
that one relevant sentence in a long paragraph is not drowned out. Each sentence is indexed together with its
condition's names and its section's topic words ("causes", "risk factors", "when to see a doctor"...), so
"what causes melanoma" finds the melanoma causes even though no cause mentions the word. Words are reduced
to a crude stem (plural and "-ing" endings dropped) so that "itch", "itches" and "itching" match.

Ranking: a question is about the condition it names, or, if it names none ("is it serious?"), about the
condition the model named (``condition``). That condition's passages are preferred whenever one of them is
at least half as similar as the threshold; the other pages answer only when it has nothing relevant.
Questions about urgency or seriousness ("how soon should I see a doctor", "is it serious") boost the
``see_a_doctor`` and ``severity`` sections, and "what is ..." questions the ``summary`` and
``description``. Whether a question is answered at all depends on the plain similarity of the best passage
(`MIN_SIMILARITY`), so boosts reorder passages but never make an unrelated question answerable. The answer
is the matched passage's whole section as written in the file (a list section is short and reads better
whole), prefixed with where it comes from.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from dermlens.knowledge.catalogue import Catalogue, Condition, Reference, load_catalogue

Section = Literal["summary", "description", "causes", "signs", "severity", "see_a_doctor"]

#: Section of a condition page -> how an answer names it.
SECTIONS: dict[Section, str] = {
    "summary": "in short",
    "description": "what it is",
    "causes": "causes and risk factors",
    "signs": "typical signs",
    "severity": "how serious it is",
    "see_a_doctor": "when to see a doctor",
}

# Topic words indexed with each passage so that questions about a section find it.
_SECTION_WORDS: dict[Section, str] = {
    "summary": "overview",
    "description": "description",
    "causes": "causes caused why risk factors who gets",
    "signs": "signs symptoms look like appearance",
    "severity": "serious severity dangerous outlook treatment treated cure cancer spread",
    "see_a_doctor": "when to see a doctor GP appointment how soon urgent worry worried",
}

#: Below this cosine similarity (of the best passage, before boosts) the question is not answered.
MIN_SIMILARITY = 0.12
#: A passage of the condition the question is about competes if it reaches this similarity.
PREFERRED_FLOOR = MIN_SIMILARITY / 2
SECTION_BOOST = 1.4

# Words scikit-learn's English stop-word list drops that carry meaning in questions about skin.
_KEEP_WORDS = {"serious", "see", "why", "thick", "thin", "back", "side", "become", "found", "show"}
_DEFINITION_QUESTION = re.compile(r"^\s*(what is|what's|what are|tell me about|explain)\b", re.IGNORECASE)
_URGENCY_QUESTION = re.compile(
    r"\b(how soon|how quickly|how urgent|urgent|urgently|emergency|serious|dangerous|worried|worry|deadly|"
    r"(see|visit|go to|call|contact|ring)( a| my| the)? (doctor|gp|dermatologist|specialist)|"
    r"should i (see|go|worry)|wait)\b", re.IGNORECASE)

NOT_FOUND = ("I don't know the answer to that from dermlens's condition pages. Please ask a doctor or "
             "pharmacist, or read the condition pages.")


@dataclass(frozen=True)
class Passage:
    """One list item or paragraph of a condition page."""

    condition: Condition
    section: Section
    text: str


@dataclass(frozen=True)
class Answer:
    """A passage from the condition pages that answers a question, or ``found=False``."""

    text: str
    condition_code: str | None
    condition_name: str | None
    section: Section | None
    source: Reference | None
    score: float  # cosine similarity of the chosen passage, before boosts
    found: bool

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "condition_code": self.condition_code, "condition_name": self.condition_name,
                "section": self.section, "source": None if self.source is None else self.source.to_dict(),
                "score": self.score, "found": self.found}


def answer_question(question: str, condition: str | None = None, catalogue: Catalogue | None = None) -> Answer:
    """Answer a free-text question from the condition pages; ``condition`` is the code the model named.

    >>> answer_question("What causes melanoma?").section
    'causes'
    >>> answer_question("How soon should I see a doctor?", condition="bcc").condition_code
    'bcc'
    """
    catalogue = catalogue if catalogue is not None else load_catalogue()
    index = _index_for(catalogue)
    if condition is not None:
        condition = catalogue.resolve(condition).code
    if not question or not question.strip():
        return _not_found(0.0)
    similarity = index.similarity(question)
    best_plain = float(similarity.max()) if similarity.size else 0.0
    if best_plain < MIN_SIMILARITY:
        return _not_found(best_plain)
    about = _conditions_named(question, catalogue) or ({condition} if condition is not None else set())
    sections = _sections_asked(question)
    ranked = similarity * np.array([SECTION_BOOST if p.section in sections else 1.0 for p in index.passages])
    preferred = np.array([p.condition.code in about for p in index.passages]) & (similarity >= PREFERRED_FLOOR)
    position = int(np.argmax(np.where(preferred, ranked, -1.0) if preferred.any() else ranked))
    best = index.passages[position]
    return Answer(text=_answer_text(best), condition_code=best.condition.code, condition_name=best.condition.name,
                  section=best.section, source=best.condition.references[0],
                  score=round(float(similarity[position]), 4), found=True)


def passages(catalogue: Catalogue) -> list[Passage]:
    """Every list item and paragraph of every condition page, in catalogue order."""
    found = []
    for condition in catalogue:
        for section in SECTIONS:
            value = getattr(condition, section)
            for text in (value if isinstance(value, tuple) else (value,)):
                found.append(Passage(condition, section, text))
    return found


class _Index:
    """TF-IDF vectors of every sentence of every passage of one catalogue."""

    def __init__(self, catalogue: Catalogue) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.passages = passages(catalogue)
        owners, texts = [], []
        for number, passage in enumerate(self.passages):
            for sentence in _sentences(passage.text):
                owners.append(number)
                texts.append(_indexed_text(passage, sentence))
        self.owners = np.asarray(owners)
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), tokenizer=_tokens, token_pattern=None,
                                          lowercase=True, sublinear_tf=True)
        self.matrix = self.vectorizer.fit_transform(texts)

    def similarity(self, question: str) -> np.ndarray:
        """Cosine similarity of the question to each passage (its best sentence)."""
        # rows are L2-normalised, so the dot product is the cosine similarity
        per_sentence = (self.matrix @ self.vectorizer.transform([question]).T).toarray().ravel()
        per_passage = np.zeros(len(self.passages))
        np.maximum.at(per_passage, self.owners, per_sentence)
        return per_passage


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS - _KEEP_WORDS)


def _tokens(text: str) -> list[str]:
    """Words of two or more letters, English stop words removed, crudely stemmed."""
    stop_words = _stop_words()
    return [_stem(w) for w in re.findall(r"(?u)\b\w\w+\b", text.lower().replace("\u2019", "'"))
            if w not in stop_words]


def _stem(word: str) -> str:
    """Drop plural and "-ing" endings: itches, itching -> itch; moles -> mole; bleeding -> bleed."""
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text) if s.strip()]


def _sections_asked(question: str) -> set[Section]:
    """The sections a question's wording asks for, beyond its words' own matches."""
    asked: set[Section] = set()
    if _URGENCY_QUESTION.search(question):
        asked |= {"see_a_doctor", "severity"}
    if _DEFINITION_QUESTION.search(question):
        asked |= {"summary", "description"}
    return asked


_INDEXES: weakref.WeakKeyDictionary[Catalogue, _Index] = weakref.WeakKeyDictionary()


def _index_for(catalogue: Catalogue) -> _Index:
    """Build the index once per catalogue."""
    index = _INDEXES.get(catalogue)
    if index is None:
        index = _INDEXES[catalogue] = _Index(catalogue)
    return index


def _indexed_text(passage: Passage, sentence: str) -> str:
    condition = passage.condition
    return " ".join([condition.name, *condition.aliases, _SECTION_WORDS[passage.section], sentence])


def _names_of(condition: Condition) -> list[str]:
    names = [re.sub(r"\s*\(.*?\)", "", condition.name), *condition.aliases]
    if len(condition.code) >= 3:
        names.append(condition.code.replace("_", " "))
    return [n for n in names if n]


def _conditions_named(question: str, catalogue: Catalogue) -> set[str]:
    """Codes of the conditions the question mentions by name, alias or code."""
    text = question.lower().replace("\u2019", "'")
    return {c.code for c in catalogue
            if any(re.search(rf"\b{re.escape(name.lower())}\b", text) for name in _names_of(c))}


def _answer_text(passage: Passage) -> str:
    value = getattr(passage.condition, passage.section)
    body = " ".join(f"• {item}" for item in value) if isinstance(value, tuple) else value
    return f"From the page on {passage.condition.name} ({SECTIONS[passage.section]}): {body}"


def _not_found(score: float) -> Answer:
    return Answer(text=NOT_FOUND, condition_code=None, condition_name=None, section=None, source=None,
                  score=round(score, 4), found=False)
