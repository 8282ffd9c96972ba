"""Evaluate a bundle (torch-free scorer, metrics) and compare PyTorch vs ONNX."""
