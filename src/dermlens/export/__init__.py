"""Exporting trained models (ONNX now; more formats with the custom-vision projects)."""
