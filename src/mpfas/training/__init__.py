"""Meta-learning training of HFN+MP, one protocol at a time (``stages/train.py``).

``data`` draws per-domain balanced batches, ``algorithms`` holds one iteration
(official alternating scheme or bilevel), ``checkpoint`` saves and restores everything
a resume needs, and ``loop.train`` ties them together with MLflow tracking.
"""

from .algorithms import alternating_step, bilevel_meta_gradients, bilevel_step, fas_loss
from .checkpoint import load as load_checkpoint
from .data import DomainBatch, DomainSampler
from .loop import TrainingError, TrainResult, resolve_device, train, validate

__all__ = [
    "DomainBatch",
    "DomainSampler",
    "TrainResult",
    "TrainingError",
    "alternating_step",
    "bilevel_meta_gradients",
    "bilevel_step",
    "fas_loss",
    "load_checkpoint",
    "resolve_device",
    "train",
    "validate",
]
