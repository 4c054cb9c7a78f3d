"""The ordered class lists dermlens knows, with display names.

HAM10000 / ISIC 2018 Task 3 use seven diagnostic categories. The order below is the ISIC challenge
column order (MEL, NV, BCC, AKIEC, BKL, DF, VASC) so that submission files need no re-ordering.
"""

from __future__ import annotations

HAM10000_CLASSES: tuple[str, ...] = ("mel", "nv", "bcc", "akiec", "bkl", "df", "vasc")

#: ISIC challenge ground-truth / submission column for each HAM10000 code.
ISIC_COLUMNS: dict[str, str] = {code: code.upper() for code in HAM10000_CLASSES}

DISPLAY_NAMES: dict[str, str] = {
    "mel": "Melanoma",
    "nv": "Melanocytic naevus",
    "bcc": "Basal cell carcinoma",
    "akiec": "Actinic keratosis / intraepithelial carcinoma",
    "bkl": "Benign keratosis (solar lentigo, seborrhoeic keratosis, lichen planus-like keratosis)",
    "df": "Dermatofibroma",
    "vasc": "Vascular lesion",
}

#: Other spellings found in public copies of ISIC/HAM data, mapped to the HAM10000 code.
ALIASES: dict[str, str] = {
    "melanoma": "mel",
    "nevus": "nv",
    "naevus": "nv",
    "melanocytic_nevi": "nv",
    "basal_cell_carcinoma": "bcc",
    "actinic_keratosis": "akiec",
    "squamous_cell_carcinoma": "akiec",
    "seborrheic_keratosis": "bkl",
    "pigmented_benign_keratosis": "bkl",
    "benign_keratosis": "bkl",
    "dermatofibroma": "df",
    "vascular_lesion": "vasc",
}


def display_name(code: str) -> str:
    """A person-readable name for a class code; unknown codes are shown as given."""
    return DISPLAY_NAMES.get(code, code.replace("_", " ").capitalize())


def canonical_label(label: str) -> str:
    """Lower-case a label and map known aliases (``"Melanoma"`` -> ``"mel"``); others pass through."""
    key = label.strip().lower().replace(" ", "_").replace("-", "_")
    return ALIASES.get(key, key)
