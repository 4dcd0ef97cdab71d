"""Serving a trained checkpoint: prediction on files, ONNX export, the MLflow model.

The top of the library: it reads checkpoints (``mpfas.models.checkpoint``) and scores with
``mpfas.models.inference``; nothing below imports it (tests/test_layers.py).
"""
