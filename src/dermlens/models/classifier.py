"""`SkinClassifier`: a backbone, global average pooling, dropout and a linear layer.

Optionally the patient metadata (age, sex, body site, encoded by `dermlens.data.metadata`) is
concatenated to the pooled image features before the linear layer.
"""

from __future__ import annotations

import torch
from torch import nn


class SkinClassifier(nn.Module):
    """Image (and optional metadata vector) -> class logits."""

    def __init__(self, backbone: nn.Module, n_features: int, n_classes: int, *,
                 dropout: float = 0.2, n_metadata: int = 0, backbone_name: str = "") -> None:
        super().__init__()
        self.backbone = backbone
        self.backbone_name = backbone_name
        self.n_features = n_features
        self.n_metadata = n_metadata
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(n_features + n_metadata, n_classes)

    @classmethod
    def from_timm(cls, network: nn.Module, n_classes: int, *, dropout: float, n_metadata: int,
                  keep_head: bool, backbone_name: str) -> "SkinClassifier":
        imagenet_head = network.get_classifier()
        network.reset_classifier(0)  # pooling stays: forward() now returns pooled features
        model = cls(network, network.num_features, n_classes, dropout=dropout,
                    n_metadata=n_metadata, backbone_name=backbone_name)
        if keep_head and isinstance(imagenet_head, nn.Linear) and n_metadata == 0:
            model.classifier.load_state_dict(imagenet_head.state_dict())
        return model

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features, (N, n_features)."""
        return self.backbone(images)

    def head(self, features: torch.Tensor, metadata: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_metadata:
            if metadata is None:
                raise ValueError("this model was trained with patient metadata; pass it")
            features = torch.cat([features, metadata], dim=1)
        return self.classifier(self.dropout(features))

    def forward(self, images: torch.Tensor, metadata: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(images), metadata)
