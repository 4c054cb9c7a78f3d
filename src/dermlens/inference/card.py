"""The model card summary `dermlens info` prints, read from the model file's own metadata."""

from __future__ import annotations

from dermlens import DISCLAIMER
from dermlens.data.labels import display_name
from dermlens.inference.onnx_model import OnnxModel

GENERIC_LIMITS = (
    "Trained on dermoscopic images: clinical (phone) photos are outside what it has seen.",
    "Its training data may not represent every skin type, age group, body site or camera.",
)


def _pct(value) -> str:
    return "n/a" if value is None else f"{float(value):.1%}"


def _num(value) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"


def _held_out(info: dict) -> dict | None:
    """The held-out figures: the model card's, else the test metrics the export recorded."""
    card = info.get("card", {}) or {}
    metrics = info.get("metrics", {}) or {}
    subset = metrics.get("held_out_subset")
    return card.get("held_out") or (metrics.get(subset) if subset else None)


def card_summary(model: OnnxModel) -> str:
    """A plain-text summary: what the model is, how good it is, when it abstains, where it fails."""
    info, gates = model.info, model.gates
    card = info.get("card", {}) or {}
    prep = model.preprocessing
    lines = [f"dermlens model: {card.get('name', info.get('backbone', 'unknown'))}"]
    if card.get("version"):
        lines.append(f"version: {card['version']}")
    lines.append(f"backbone: {info.get('backbone')}, input {prep.width}x{prep.height}"
                 + (f", Shades-of-Gray colour constancy (p={prep.colour_constancy:g})"
                    if prep.colour_constancy else ""))
    members = info.get("members") or []
    if members:
        lines.append(f"ensemble of {len(members)}, probabilities averaged: " + "; ".join(
            f"{m.get('name')} ({m.get('backbone')}, {m.get('width')}x{m.get('height')}"
            + (f", colour constancy p={m['colour_constancy']:g}" if m.get("colour_constancy") else "") + ")"
            for m in members))
    lines.append("classes: " + ", ".join(f"{c} ({display_name(c)})" for c in model.classes))
    for key, label in (("data", "data"), ("licence", "licence"), ("recipe", "recipe")):
        if card.get(key):
            lines.append(f"{label}: {card[key]}")
    metrics = info.get("metrics", {}) or {}
    subset = metrics.get("held_out_subset")
    held_out = _held_out(info)
    if held_out:
        lines.append(f"held-out {card.get('held_out_name', subset or 'split')}: balanced accuracy "
                     f"{_num(held_out.get('balanced_accuracy'))}, macro AUC {_num(held_out.get('macro_auc'))}, "
                     f"accuracy {_num(held_out.get('accuracy'))}")
    for name, figures in (card.get("external") or {}).items():
        lines.append(f"external ({name}): " + ", ".join(f"{k} {_num(v)}" for k, v in figures.items()))
    if card.get("sensitivity"):
        lines.append("sensitivity per class: " + ", ".join(f"{c} {_pct(v)}" for c, v in card["sensitivity"].items()))
    steps = _calibration_steps(metrics.get("calibration") or {})
    how = ", then ".join(
        f"matrix scaling on temperature {step.get('temperature', 1.0):.3f} (folded into the model)"
        if step.get("method") == "matrix" else f"temperature {step.get('temperature', model.temperature):.3f}"
        for step in steps)
    lines.append(f"calibration: {how}; validation ECE "
                 f"{_num(steps[0].get('val_ece_before'))} before, {_num(steps[-1].get('val_ece_after'))} after")
    quantization = info.get("quantization")
    if quantization:
        agreement = quantization.get("float_agreement") or {}
        lines.append(f"int8: convolutional trunk quantized ({quantization.get('calibration_images')} training "
                     f"images set the ranges); same top class as the float model on "
                     f"{_pct(agreement.get('same_top_class'))} of {agreement.get('images')} held-out images")
    uncertain = gates.evidence.get("uncertain", {})
    lines.append(f"uncertain below top probability {gates.min_confidence:.2f}"
                 + (f" (validation: {_pct(uncertain.get('coverage'))} answered, "
                    f"{_pct(uncertain.get('accuracy_when_answered'))} of those right)" if uncertain else ""))
    if model.has_not_skin_check:
        evidence = gates.evidence.get("not_skin", {})
        lines.append(f"not-skin check: score above {gates.not_skin_threshold:.3f} is rejected "
                     f"(held-out skin images rejected: validation {_pct(evidence.get('validation_rejected'))}"
                     f", test {_pct(evidence.get('test_rejected'))})")
    else:
        lines.append("not-skin check: none in this model (exported without training data)")
    lines.append("known limits:")
    lines += [f"  - {limit}" for limit in card.get("limits", GENERIC_LIMITS)]
    lines.append(f"intended use: {card.get('intended_use', 'decision support for skin-lesion assessment')}")
    lines.append(DISCLAIMER)
    return "\n".join(lines)


def _calibration_steps(calibration: dict) -> list[dict]:
    """A model recalibrated after training (`dermlens recalibrate`, `dermlens quantize`) records the
    calibration before in ``earlier``: the steps, first to last."""
    steps = []
    while calibration:
        steps.insert(0, calibration)
        calibration = calibration.get("earlier") or {}
    return steps or [{}]


def card_facts(model: OnnxModel) -> dict:
    """The model card as data (for ``GET /api/v1/model``): the same facts `card_summary` prints."""
    info, gates = model.info, model.gates
    card = info.get("card", {}) or {}
    metrics = info.get("metrics", {}) or {}
    evidence = gates.evidence
    return {
        "name": card.get("name", info.get("backbone", "unknown")),
        "version": card.get("version"),
        "backbone": info.get("backbone"),
        "input_size": [model.preprocessing.width, model.preprocessing.height],
        "members": [{k: m.get(k) for k in ("name", "backbone", "width", "height")}
                    for m in info.get("members") or []],
        "classes": [{"code": c, "name": display_name(c)} for c in model.classes],
        "held_out": _held_out(info),
        "external": card.get("external"),
        "calibration": {**(metrics.get("calibration", {}) or {}), "temperature": model.temperature},
        "quantization": info.get("quantization"),
        "abstention": {"min_confidence": gates.min_confidence, **(evidence.get("uncertain", {}) or {})},
        "not_skin_check": ({"threshold": gates.not_skin_threshold, **(evidence.get("not_skin", {}) or {})}
                           if model.has_not_skin_check else None),
        "limits": list(card.get("limits", GENERIC_LIMITS)),
        "intended_use": card.get("intended_use", "decision support for skin-lesion assessment"),
        "summary": card_summary(model),
        "disclaimer": DISCLAIMER,
    }
