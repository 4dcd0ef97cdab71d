"""Training, one protocol at a time (``stages/train.py``), of any registered method (``mpfas.methods``).

``data`` draws per-domain balanced batches (every method's), ``algorithms`` holds one HFN+MP step (official
alternating scheme or bilevel), ``step.meta_iteration`` one HFN+MP iteration (``execution`` its
memory format, ``train.channels_last``), ``run`` the run's
files, MLflow run and resume, ``rng`` the RNG states a resume restores (the checkpoint
format is ``mpfas.models.checkpoint``), ``protocols`` what a protocol name trains on (cross-domain
sources or OULU-NPU phone pseudo-domains), ``keys`` the params a training stage declares, and
``loop.train`` ties them together.
"""

from mpfas.train.algorithms import alternating_step, bilevel_meta_gradients, bilevel_step, fas_loss
from mpfas.train.data import DomainBatch, DomainSampler
from mpfas.train.loop import TrainingError, TrainResult, train, validate
from mpfas.train.step import meta_iteration

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
