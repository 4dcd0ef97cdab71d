"""The training step's execution settings (``mpfas.train.execution``): the defaults are the
plain step, bit for bit, and the optimised step (``bench/train_step.py``'s OPTIMISED) stays
within a stated tolerance of it after a few iterations from the same weights on the same batches."""

from __future__ import annotations

import itertools
import sys
import warnings
from pathlib import Path

import pytest
import torch

from helpers import param_defaults as dflt
from mpfas.core.config import ConfigError, TrainConfig, load_params
from mpfas.methods.hfn_mp.step import Optimisers, meta_iteration
from mpfas.models import build_model
from mpfas.models.hfn import _mean
from mpfas.train.data import DomainBatch
from mpfas.train.execution import channels_last, prepare_model

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from train_step import OPTIMISED  # noqa: E402

SIZE, ITERATIONS = 64, 2


def _train(cfg: TrainConfig, batches: dict[str, list[DomainBatch]]) -> tuple[torch.nn.Module, list[dict], dict]:
    """ITERATIONS alternating iterations of a seed-0 resnet18 HFN+MP under ``cfg``; the model,
    the loss stats of each iteration and the starting weights."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(dflt.model(backbone="resnet18", input_size=SIZE))
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    model = prepare_model(model, cfg, torch.device("cpu"))
    model.train()
    opt = Optimisers.for_model(model, cfg)
    pools = {d: itertools.cycle(b) for d, b in batches.items()}
    stats = [meta_iteration(model, opt, lambda d: next(pools[d]), list(batches), cfg, torch.device("cpu"))
             for _ in range(ITERATIONS)]
    return model, stats, start


@pytest.fixture(scope="module")
def batches() -> dict[str, list[DomainBatch]]:
    gen = torch.Generator().manual_seed(1)

    def batch(domain: str) -> DomainBatch:
        return DomainBatch(domain, torch.rand(4, 3, SIZE, SIZE, generator=gen), torch.tensor([1, 1, 0, 0]))

    return {"S0": [batch("S0")], "S1": [batch("S1")], "T": [batch("T") for _ in range(2)]}


def _cfg(**settings) -> TrainConfig:
    return dflt.train(inner_loops=2, meta_lr=0.01, **settings)


def test_default_runs_nchw_on_cpu_and_nhwc_on_cuda():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not channels_last(dflt.train(), cpu) and channels_last(dflt.train(), cuda)  # as before the setting
    assert channels_last(dflt.train(channels_last=True), cpu)
    assert not channels_last(dflt.train(channels_last=False), cuda)
    params = load_params(REPO / "params.yaml")
    assert params.train.channels_last == "auto"


@pytest.mark.parametrize("value", ['"true"', 1, "always"])  # a quoted "true" is a string
def test_channels_last_takes_auto_true_or_false_only(tmp_path, value):
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text().replace("channels_last: auto", f"channels_last: {value}"))
    with pytest.raises(ConfigError, match=r"params.yaml: train\.channels_last: .* is not one of"):
        load_params(path)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_mean_of_two_streams_equals_the_stacked_mean_bit_for_bit(layout):
    """Why the plain step is unchanged: (a + b) / 2 gives the stacked mean's floats and gradients."""
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(4, 8, 6, 6, generator=gen).contiguous(memory_format=layout).requires_grad_()
            for _ in range(2))
    grad = torch.randn(4, 8, 6, 6, generator=gen)
    ours, stacked = _mean([a, b]), torch.stack([a, b]).mean(dim=0)
    assert torch.equal(ours, stacked)
    assert all(torch.equal(x, y) for x, y in zip(torch.autograd.grad(ours, [a, b], grad),
                                                 torch.autograd.grad(stacked, [a, b], grad)))


def test_optimised_step_matches_the_plain_step(batches):
    """Losses and every weight of the optimised step within tolerance of the plain step's.

    channels_last sums the convolutions' products in another order and PyTorch's NHWC batch
    norm takes its statistics less accurately (docs/benchmarks.md, "train.channels_last: true on CPU"), so values differ
    from the first step on, and the randomly initialised network with BatchNorm on small
    batches amplifies that: against a float64 reference, one fp32 forward/backward of the
    two-stream ResNet-50 at 128 px has gradients 2 % off in NCHW and 4.5 % off in NHWC (the
    plain step at 1 and 2 threads differs by ~5e-5 in the losses here), and steps compound it.
    Measured here: losses 6e-4 apart (relative), weights at most 2e-5. Tolerances: each loss
    within 2e-3 relative, each weight within 1e-4 + half of how far training moved that tensor.
    A layout bug (a batch read in the wrong order, a setting not applied) moves the losses by
    far more.
    """
    model, stats, start = _train(_cfg(**OPTIMISED), batches)
    ref_model, ref_stats, _ = _train(_cfg(), batches)
    if OPTIMISED.get("channels_last") is True:
        convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs), "setting not applied"
    for ours, ref in zip(stats, ref_stats):
        assert ours.keys() == ref.keys()
        for key in ours:
            assert ours[key] == pytest.approx(ref[key], rel=2e-3), key
    reference = dict(ref_model.named_parameters())
    for name, p in model.named_parameters():
        moved = (reference[name] - start[name]).abs().max().item()
        apart = (p - reference[name]).abs().max().item()
        assert apart <= 1e-4 + 0.5 * moved, f"{name}: {apart:.3g} apart, training moved it {moved:.3g}"
