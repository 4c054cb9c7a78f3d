"""`EnsembleClassifier`: several trained classifiers answering as one model.

Each member's probabilities are calibrated with its own temperature and averaged; ``forward`` returns
the log of the average, which the rest of dermlens uses like any classifier's logits (a softmax of it
gives the average back; the ensemble's own calibration, a temperature or a matrix scaling stored as
its output map, and its decision bias are fitted on validation on top). One forward pass, one
exported ONNX graph: the predictor does not know it runs an ensemble.

Members may have been prepared differently. The ensemble takes images as its first member (its
*primary*: the heatmaps and the not-skin check read it) was trained on them; every other member gets
them converted inside the graph to what it was trained on: resized by two fixed matrix products that
reproduce PIL's bilinear resampling (`resize_matrix`, so the exported graph needs no Resize operator),
given Shades-of-Gray colour constancy when the member used it and the primary did not, and normalised
with the member's own mean and standard deviation.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn

from dermlens.data.images import Preprocessing


def shades_of_gray(raw: torch.Tensor, power: float) -> torch.Tensor:
    """`dermlens.data.images.shades_of_gray` on a float (N, 3, H, W) batch of 0-255 pixel values."""
    illuminant = torch.pow(torch.pow(raw, power).mean(dim=(2, 3), keepdim=True), 1.0 / power)
    norm = torch.sqrt(torch.sum(illuminant * illuminant, dim=1, keepdim=True))
    gains = norm / (torch.clamp(illuminant, min=1e-6) * 3.0 ** 0.5)
    gains = torch.where(norm < 1e-6, torch.ones_like(gains), gains)  # an all-black image stays as it is
    return torch.floor(torch.clamp(raw * gains, 0.0, 255.0))


@lru_cache(maxsize=16)
def resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in): PIL's bilinear resampling of one axis as a matrix (rows sum to 1).

    PIL resizes each axis separately with a triangle filter widened when shrinking (antialiasing), so
    resizing an image is ``rows @ image @ columns.T``; the matrix is read off PIL itself, one unit
    impulse at a time, so it is exactly the filter `dermlens.data.images.Preprocessing` uses.
    """
    from PIL import Image

    matrix = np.zeros((size_out, size_in), np.float32)
    for position in range(size_in):
        impulse = np.zeros((1, size_in), np.float32)
        impulse[0, position] = 1.0
        resized = Image.fromarray(impulse, mode="F").resize((size_out, 1), Image.Resampling.BILINEAR)
        matrix[:, position] = np.asarray(resized)[0]
    return matrix


def conversion_problem(primary: Preprocessing, member: Preprocessing) -> str | None:
    """Why images prepared for ``primary`` cannot be turned into ``member``'s input, or None."""
    if member.colour_constancy == primary.colour_constancy or not primary.colour_constancy:
        return None
    return ("its colour constancy cannot be computed from the primary member's colour-corrected input "
            "(put a member without colour constancy first)")


class EnsembleClassifier(nn.Module):
    """Images as the primary member sees them -> log of the members' average calibrated probabilities."""

    n_metadata = 0

    def __init__(self, members: list[nn.Module], temperatures: list[float],
                 preprocessings: list[Preprocessing],
                 output_map: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        super().__init__()
        if not members or not (len(members) == len(temperatures) == len(preprocessings)):
            raise ValueError("an ensemble needs one temperature and one preprocessing per member")
        self.members = nn.ModuleList(members)
        self.temperatures = [float(t) for t in temperatures]
        self.sizes = [(p.height, p.width) for p in preprocessings]
        self.colour_constancy: list[float] = []  # the power a member applies itself (0: none)
        primary = preprocessings[0]
        # the primary's input x is (pixel / 255 - mean) / std: pixel = x * to_pixels + pixels_offset
        self.register_buffer("to_pixels", _channels(255.0 * np.asarray(primary.std)))
        self.register_buffer("pixels_offset", _channels(255.0 * np.asarray(primary.mean)))
        for index, prep in enumerate(preprocessings):
            problem = conversion_problem(primary, prep)
            if problem:
                raise ValueError(f"ensemble member {index + 1}: {problem}")
            own = prep.colour_constancy if prep.colour_constancy != primary.colour_constancy else 0.0
            self.colour_constancy.append(own)
            if self.sizes[index] != self.sizes[0]:
                self.register_buffer(f"rows_{index}", torch.from_numpy(resize_matrix(primary.height, prep.height)))
                self.register_buffer(f"columns_{index}",
                                     torch.from_numpy(resize_matrix(primary.width, prep.width).T.copy()))
            self.register_buffer(f"scale_{index}", _channels(1.0 / (255.0 * np.asarray(prep.std))))
            self.register_buffer(f"offset_{index}", _channels(-np.asarray(prep.mean) / np.asarray(prep.std)))
        self.output_map: tuple[np.ndarray, np.ndarray] | None = None
        if output_map is not None:
            self.set_output_map(*output_map)
        self.same_input = [self.sizes[i] == self.sizes[0] and not self.colour_constancy[i]
                           and (p.mean, p.std) == (primary.mean, primary.std)
                           for i, p in enumerate(preprocessings)]

    def set_output_map(self, matrix: np.ndarray, bias: np.ndarray) -> None:
        """Answer with ``log(average) @ matrix.T + bias`` from now on: the ensemble's recalibration
        (`dermlens.inference.matrix_scaling`), which cannot be folded into any member's last layer."""
        matrix, bias = np.asarray(matrix, np.float32), np.asarray(bias, np.float32)
        self.output_map = (matrix, bias)
        self.register_buffer("map_matrix", torch.from_numpy(matrix.T.copy()))
        self.register_buffer("map_bias", torch.from_numpy(bias.copy()))

    @property
    def primary(self) -> nn.Module:
        return self.members[0]

    @property
    def backbone_name(self) -> str:
        return self.primary.backbone_name

    def member_input(self, index: int, images: torch.Tensor) -> torch.Tensor:
        """The primary's input -> member ``index``'s: resized, colour-corrected and normalised as the
        member was trained (resizing is linear, so it works on normalised values directly)."""
        if self.same_input[index]:
            return images
        if self.sizes[index] != self.sizes[0]:
            images = torch.matmul(torch.matmul(getattr(self, f"rows_{index}"), images),
                                  getattr(self, f"columns_{index}"))
        pixels = images * self.to_pixels + self.pixels_offset
        if self.colour_constancy[index]:
            pixels = shades_of_gray(torch.clamp(pixels, 0.0, 255.0), self.colour_constancy[index])
        return pixels * getattr(self, f"scale_{index}") + getattr(self, f"offset_{index}")

    def forward(self, images: torch.Tensor, metadata: torch.Tensor | None = None) -> torch.Tensor:
        total = None
        for index, (member, temperature) in enumerate(zip(self.members, self.temperatures)):
            probabilities = torch.softmax(member(self.member_input(index, images)) / temperature, dim=1)
            total = probabilities if total is None else total + probabilities
        log_average = torch.log(torch.clamp(total / len(self.members), min=1e-12))
        if self.output_map is None:
            return log_average
        return torch.matmul(log_average, self.map_matrix) + self.map_bias


def primary_member(model: nn.Module) -> nn.Module:
    """The model whose head, backbone and classes speak for ``model``: an ensemble's first member, or
    the model itself."""
    return model.primary if isinstance(model, EnsembleClassifier) else model


def _channels(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(values, np.float32)).view(1, 3, 1, 1)
