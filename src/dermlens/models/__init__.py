"""Backbones and the classifier built on them. Importing this package imports torch."""

from dermlens.models.classifier import SkinClassifier
from dermlens.models.registry import (
    BackboneSpec,
    create_model,
    get_backbone,
    list_backbones,
    register_backbone,
)

__all__ = [
    "BackboneSpec",
    "SkinClassifier",
    "create_model",
    "get_backbone",
    "list_backbones",
    "register_backbone",
]
