"""Data-parallel training: the train stage under ``torchrun --nproc_per_node=2`` (gloo, CPU).

Two ranks draw different batches, yet their parameters (and BatchNorm statistics) must
stay identical -- gradients are averaged after every MP and HFN backward -- and only
rank 0 may write checkpoints, run.json and MLflow. A runner wraps the real stage script
to record, per rank, what it built, drew and wrote; nothing under test is mocked.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from helpers import param_defaults as dflt
from helpers.faces import make_workspace
from helpers.stage_cmd import stage_argv
from mpfas.models import build_model
from mpfas.train import distributed

REPO = Path(__file__).resolve().parents[1]



def digest(named) -> str:
    """sha256 over (name, bytes) of tensors, in name order (also pasted into the runner)."""
    h = hashlib.sha256()
    for name, t in sorted(named, key=lambda item: item[0]):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


RUNNER = '''
import hashlib, json, os, runpy, sys
from pathlib import Path
import mpfas.models
import mpfas.models.checkpoint as ckpt
import mpfas.train.loop as loop
import mpfas.train.run as run_
import mpfas.tracking as tracking
from mpfas.train.data import DomainSampler
''' + inspect.getsource(digest) + '''
rank = int(os.environ["RANK"])
rec = {"rank": rank, "writes": [], "trackers": 0, "batches": []}
built = []

build = mpfas.models.build_model
def build_model(cfg):
    model = build(cfg)
    built.append(model)
    rec["init"] = digest(model.named_parameters())
    return model
mpfas.models.build_model = build_model

save = ckpt.save
def save_(obj, path):
    rec["writes"].append(Path(path).name)
    save(obj, path)
ckpt.save = save_

write_json = run_.write_json
def write_json_(path, obj, *a, **k):
    rec["writes"].append(Path(path).name)
    return write_json(path, obj, *a, **k)
run_.write_json = write_json_

class Tracker(tracking.Tracker):
    def __init__(self, *a, **k):
        rec["trackers"] += 1
        super().__init__(*a, **k)
tracking.Tracker = Tracker  # open_run() builds the tracker from this module

draw = DomainSampler.batch
def batch(self, domain):
    b = draw(self, domain)
    rec["batches"].append(hashlib.sha256(b.rgb.numpy().tobytes()).hexdigest()[:16])
    return b
DomainSampler.batch = batch

sys.argv = sys.argv[1:]  # the stage script and its dvc.yaml arguments
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exc:
    rec["exit"] = exc.code
model = built[0]
rec["final"] = digest(model.named_parameters())
rec["buffers"] = digest((n, b) for n, b in model.named_buffers() if b.is_floating_point())
Path(f"rank{rank}.json").write_text(json.dumps(rec))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_context_without_torchrun_is_a_no_op():
    ctx = distributed.context_from_env({})
    assert not ctx.enabled and ctx.is_main and ctx.world_size == 1
    assert distributed.context_from_env({"WORLD_SIZE": "1", "RANK": "0"}) == ctx
    assert distributed.rank_seed(666, ctx) == 666  # one process draws exactly what it always drew
    two = distributed.context_from_env({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"})
    assert two.enabled and not two.is_main and distributed.rank_seed(666, two) == (666, 1)
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    ctx.average_gradients([p])
    ctx.mean_stats({"loss": 1.5})
    assert torch.equal(p.grad, torch.full((3,), 2.0))
    assert ctx.broadcast("x") == "x" and ctx.gather("y") == ["y"]


@pytest.mark.slow  # torchrun: two fresh interpreters training together
@pytest.mark.heavy  # keeps `make test` (CI) within its time budget; `make test-all` runs it
def test_torchrun_two_ranks_stay_identical_and_only_rank0_writes(tmp_path):
    from mlflow.tracking import MlflowClient

    make_workspace(tmp_path, overrides={
        "data": {"protocols": ["OCI-M"]},
        "train": {"iterations": 3, "inner_loops": 2, "batch_live": 2, "batch_spoof": 2, "eval_every": 3, "seed": 666},
        "runtime": {"device": "cpu", "checkpoint_every": 3, "experiment": "test-ddp"},
    })
    (tmp_path / "runner.py").write_text(textwrap.dedent(RUNNER))
    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1",
           "MPFAS_PIPELINE_RUN": "ddp-test"}
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={free_port()}",
           "runner.py", *stage_argv("train", "OCI-M")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]

    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["exit"] in (0, None) and r1["exit"] in (0, None)
    # sharded data: each rank drew its own batches (3 iterations x (2 meta-test + 2 meta-train))
    assert len(r0["batches"]) == len(r1["batches"]) == 12
    assert not set(r0["batches"]) & set(r1["batches"])
    # same start, trained, and still identical (parameters and averaged BN statistics)
    assert r0["init"] == r1["init"]
    assert r0["final"] != r0["init"]
    assert r0["final"] == r1["final"]
    assert r0["buffers"] == r1["buffers"]

    # only rank 0 wrote files and talked to MLflow
    assert r1["writes"] == [] and r1["trackers"] == 0
    assert set(r0["writes"]) == {"run.json", "best.pt", "last.pt"} and r0["trackers"] == 1
    last = torch.load(tmp_path / "models/OCI-M/last.pt", weights_only=True)
    resume = last["resume"]
    assert resume["world_size"] == 2 and len(resume["ranks"]) == 2
    assert resume["ranks"][0]["sampler"]["rng"] != resume["ranks"][1]["sampler"]["rng"]
    model = build_model(dflt.model(**last["model_config"]))
    model.load_state_dict(last["model"])
    assert digest(model.named_parameters()) == r0["final"]  # the saved model is the shared one
    summary = json.loads((tmp_path / "metrics/train_OCI-M.json").read_text())
    assert summary["world_size"] == 2 and summary["iterations"] == 3

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("test-ddp").experiment_id])
    training = [r for r in runs if r.data.tags.get("mpfas.role") != "pipeline"]  # not the parent run
    assert len(training) == 1 and len(runs) == 2  # one training run (rank 0's) under one parent
    run = training[0]
    assert run.data.tags["mlflow.parentRunId"] in {r.info.run_id for r in runs}
    assert run.info.status == "FINISHED" and run.data.tags["world_size"] == "2"
    assert run.info.run_id == json.loads((tmp_path / "models/OCI-M/run.json").read_text())["run_id"]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "meta_train_loss")] == [1, 2, 3]
