"""Serving: calibration and (in later versions) the ONNX Runtime predictor. No torch on this path."""
