"""Meta-learning training of HFN+MP, one protocol at a time (``stages/train.py``).

``data`` draws per-domain balanced batches, ``algorithms`` holds one step (official
alternating scheme or bilevel), ``step.meta_iteration`` one iteration (``execution`` its
memory format, ``train.channels_last``), ``run`` the run's
files, MLflow run and resume, ``rng`` the RNG states a resume restores (the checkpoint
format is ``mpfas.models.checkpoint``), ``protocols`` what a protocol name trains on (cross-domain
sources or OULU-NPU phone pseudo-domains), ``keys`` the params a training stage declares, and
``loop.train`` ties them together.
"""

from mpfas.train.algorithms import alternating_step, bilevel_meta_gradients, bilevel_step, fas_loss
from mpfas.train.data import DomainBatch, DomainSampler
from mpfas.train.loop import TrainingError, TrainResult, meta_iteration, train, validate

__all__ = [
    "DomainBatch",
    "DomainSampler",
    "TrainResult",
    "TrainingError",
    "alternating_step",
    "bilevel_meta_gradients",
    "bilevel_step",
    "fas_loss",
    "meta_iteration",
    "train",
    "validate",
]
