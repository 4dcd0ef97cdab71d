"""Serving a trained checkpoint: prediction on files, ONNX export, the MLflow model.

The top of the library: it reads checkpoints (``mpfas.checkpoint``) and scores with
``mpfas.inference``; nothing below imports it (tests/test_layers.py).
"""
