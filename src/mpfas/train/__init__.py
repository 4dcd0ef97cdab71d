"""Training, one protocol at a time (``stages/train.py``), of any registered method (``mpfas.methods``).

``data`` draws per-domain balanced batches (every method's), ``execution`` the step's memory
format (``train.channels_last``), ``run`` the run's
files, MLflow run and resume, ``rng`` the RNG states a resume restores (the checkpoint
format is ``mpfas.models.checkpoint``), ``protocols`` what a protocol name trains on (cross-domain
sources or OULU-NPU phone pseudo-domains), ``keys`` the params a training stage declares, and
``loop.train`` ties them together.
"""

from mpfas.train.data import DomainBatch, DomainSampler
from mpfas.train.loop import TrainingError, TrainResult, train, validate

__all__ = [
    "DomainBatch",
    "DomainSampler",
    "TrainResult",
    "TrainingError",
    "train",
    "validate",
]
