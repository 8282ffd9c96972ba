"""Calibrate a bundle: chunked scoring settings, temperature/Platt scaling, threshold."""
