"""Stage 4, measuring a model (chapters 6, 9 and 13).

- `metrics`: accuracy, macro AUC, confusion matrix, per-class report.
- `stats`: Wilson and t intervals, the exact McNemar test, the bootstrap.
- `decision`: lesson 3's comparison of two models and the rule that picks one.
- `calibration`: reliability, expected calibration error, temperature scaling.
- `gradcam`: Grad-CAM maps, and which images to show with them.
"""
