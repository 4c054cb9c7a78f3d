"""Backbones and the classifier built on them. torch is imported only when a model is built."""

from dermlens.models.registry import (
    BackboneSpec,
    create_model,
    get_backbone,
    list_backbones,
    register_backbone,
)

__all__ = [
    "BackboneSpec",
    "create_model",
    "get_backbone",
    "list_backbones",
    "register_backbone",
]
