"""Builders and checks shared by the test modules (test modules never import each other)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# where DVC runs a temp or queued experiment: a copy of the repository inside it
EXP_COPY = Path(".dvc", "tmp", "exps", "tmpabc123")
