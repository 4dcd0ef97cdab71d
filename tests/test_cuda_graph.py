"""``train.cuda_graph``: the alternating step replayed from one capture (methods/hfn_mp/graph.py).

The capture itself needs a GPU (``bench/gpu_check.py --cuda-graph`` checks it there). Everything
around it runs here with the ``Eager`` backend, which honours the same contract without capture:
static inputs, zero momentum buffers standing in for SGD's first step, warm-up undone in place.
Through the real trainer, the graphed step must give the plain step's weights bit for bit.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings

import pytest
import torch

from helpers import param_defaults as dflt
from mpfas.core.config import ConfigError
from mpfas.methods import build_model
from mpfas.methods.hfn_mp import HFNTrainer
from mpfas.methods.hfn_mp.graph import Eager, GraphedStep
from mpfas.train.data import DomainBatch

SIZE, ITERATIONS = 64, 3
CPU = torch.device("cpu")


def _params(**train):
    return dflt.params(model=dflt.model(input_size=SIZE), train=dflt.train(inner_loops=2, meta_lr=0.01, **train))


@pytest.fixture(scope="module")
def pools() -> dict[str, list[DomainBatch]]:
    gen = torch.Generator().manual_seed(3)

    def batch(domain: str) -> DomainBatch:
        return DomainBatch(domain, torch.rand(4, 3, SIZE, SIZE, generator=gen), torch.tensor([1, 1, 0, 0]))

    return {d: [batch(d) for _ in range(3)] for d in ("O", "C", "I")}


def _train(params, pools, backend=None, iterations=ITERATIONS):
    """The model, trainer and per-iteration stats of ``iterations`` HFNTrainer steps on ``pools``
    (the domain roles rotate, as the shuffled domains of the loop do)."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random backbones on purpose
        model = build_model(params.model)
    model.train()
    trainer = HFNTrainer(model, params, ["O", "C", "I"], graph_backend=backend)
    cycles = {d: itertools.cycle(b) for d, b in pools.items()}
    orders = itertools.cycle([["O", "C", "I"], ["I", "O", "C"], ["C", "I", "O"]])
    stats = [trainer.step(it, next(orders), lambda d: next(cycles[d]), CPU) for it in range(1, iterations + 1)]
    return model, trainer, stats


def _state(model, trainer) -> dict[str, torch.Tensor]:
    """Weights, buffers and momentum buffers: everything the step writes."""
    out = dict(model.state_dict())
    for name, opt in (("mp", trainer.opt.mp), ("hfn", trainer.opt.hfn)):
        for i, s in enumerate(opt.state_dict()["state"].values()):
            out[f"{name}.{i}"] = s["momentum_buffer"]
    return out


@pytest.fixture(scope="module")
def plain(pools):
    return _train(_params(), pools)


def test_graphed_step_learns_exactly_what_the_plain_step_learns(plain, pools):
    graphed = _train(_params(cuda_graph=True), pools, Eager())
    assert graphed[1].graph is not None and plain[1].graph is None
    assert graphed[2] == plain[2]  # every loss of every iteration
    ref, ours = _state(*plain[:2]), _state(*graphed[:2])
    assert ref.keys() == ours.keys()
    changed = [k for k in ref if not torch.equal(ref[k], ours[k])]
    assert not changed, f"{len(changed)} tensors differ, e.g. {changed[:3]}"
    # and the weights did move: the comparison is not of two untouched models
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = build_model(_params().model).state_dict()
    for key in ("hfn.classifier.weight", "pattern.encoder.0.weight"):  # HFN and MP both stepped
        assert not torch.equal(start[key], ref[key])


def test_warm_up_is_undone_before_the_first_real_step(pools):
    """With the warm-up counted as real steps, the weights would be three steps ahead."""
    class Count(Eager):
        calls = 0

        def build(self, step, warmup, reset):
            def counted():
                Count.calls += 1
                return step()
            return super().build(counted, warmup, reset)

    model, trainer, _ = _train(_params(cuda_graph=True), pools, Count(), iterations=1)
    assert Count.calls == 4  # three warm-up iterations, then the real one
    once = _train(_params(), pools, iterations=1)
    assert all(torch.equal(a, b) for a, b in zip(_state(model, trainer).values(), _state(*once[:2]).values()))


def test_a_batch_of_another_shape_fails_naming_the_setting(pools):
    params = _params(cuda_graph=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(params.model)
    trainer = HFNTrainer(model, params, ["O", "C", "I"], graph_backend=Eager())
    step = trainer.graph
    assert isinstance(step, GraphedStep)
    train, test = [pools["O"][0], pools["C"][0]], [pools["I"][0], pools["I"][1]]
    step(train, test)
    small = DomainBatch("I", pools["I"][0].rgb[:2], pools["I"][0].is_live[:2])
    with pytest.raises(ValueError, match=r"train\.cuda_graph: a batch of shape \(2, 3, 64, 64\)"):
        step(train, [small, small])
    with pytest.raises(ValueError, match=r"train\.cuda_graph: captured 2 meta-train and 2 meta-test"):
        step(train, test[:1])


def test_cuda_graph_needs_cuda_and_hfn_mp_alternating():
    params = _params(cuda_graph=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(params.model)
    with pytest.raises(ConfigError, match=r"train\.cuda_graph: true needs a CUDA device, and this run trains on cpu"):
        HFNTrainer(model, params, ["O", "C", "I"])
    for bad in (dataclasses.replace(params, train=dataclasses.replace(params.train, algorithm="bilevel")),
                dataclasses.replace(params, model=dataclasses.replace(params.model, method="ssdg"))):
        with pytest.raises(ConfigError, match=r"train\.cuda_graph: true captures HFN\+MP's alternating step only"):
            bad.validate()
    params.validate()  # hfn_mp alternating: fine
