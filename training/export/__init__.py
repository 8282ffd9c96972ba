"""Export a fine-tuned model to ONNX, optimise, quantize, check parity, write the bundle."""
