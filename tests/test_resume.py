"""Training resumes from ``last.pt`` only when nothing that shapes its result changed.

* a SIGKILL between checkpoints, then a re-run: the weights, optimiser state, curves and MLflow
  run equal an uninterrupted run's;
* the resume fingerprint covers the faces' content, the weights file, the training and
  scoring params, and leaves out the knobs that cannot change a result (``runtime``,
  ``train.iterations``, the memory format); ``runtime.resume: never`` starts over;
* loader threads give the same batches, so their count may change on resume.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from helpers.faces import manifest_rows, picked_face, train_workspace
from mpfas.core.config import load_params
from mpfas.models.inference import FaceCache, cache_budget, load_face, scale_by_table, to_unit
from mpfas.train import DomainSampler

# ---------------------------------------------------------------- kill and resume

RUNNER = textwrap.dedent("""
    import logging, sys, time
    import torch
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(1)
    from mpfas.core.config import load_params
    from mpfas.train import train

    def hook(it):
        print("checkpoint", it, flush=True)
        if sys.argv[1] == "stall" and it == 2:
            time.sleep(120)

    from mpfas.train.curves import Curves

    train(load_params("params.yaml"), "OCI-M", manifest="data/manifests/OCI-M.csv", faces="data/faces",
          out_dir=sys.argv[2], curves=Curves.at(sys.argv[2] + "/loss.csv", sys.argv[2] + "/val.csv"),
          on_checkpoint=hook)
""")


@pytest.mark.slow  # three fresh interpreters (torch + MLflow imports): ~25 s on an idle 2-core box
def test_resume_after_kill_matches_uninterrupted_run(workspace, mlflow_uri):
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["train"].update(iterations=4, eval_every=2, inner_loops=1)
    params["runtime"].update(checkpoint_every=2)
    Path("params.yaml").write_text(yaml.safe_dump(params))
    Path("runner.py").write_text(RUNNER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}

    def run(mode, out):
        return subprocess.run([sys.executable, "runner.py", mode, out], env=env, capture_output=True, text=True,
                              timeout=300)


    proc = subprocess.Popen([sys.executable, "runner.py", "stall", "models/killed"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if line.strip() == "checkpoint 2":
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed = torch.load("models/killed/last.pt", weights_only=True)
    assert killed["iteration"] == 2
    run_id = json.loads(Path("models/killed/run.json").read_text())["run_id"]

    resumed = run("go", "models/killed")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "checkpoint 2" not in resumed.stdout and "checkpoint 4" in resumed.stdout
    assert "resuming OCI-M" in resumed.stderr
    straight = run("go", "models/straight")
    assert straight.returncode == 0, straight.stderr[-2000:]

    a = torch.load("models/killed/last.pt", weights_only=True)
    b = torch.load("models/straight/last.pt", weights_only=True)
    assert a["iteration"] == b["iteration"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
    for opt in ("mp", "hfn"):
        sa, sb = a["resume"]["trainer"][opt]["state"], b["resume"]["trainer"][opt]["state"]
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k]["momentum_buffer"], sb[k]["momentum_buffer"])
                                              for k in sb)
    for curve in ("loss.csv", "val.csv"):  # the resumed curves are the uninterrupted ones
        assert Path("models/killed", curve).read_text() == Path("models/straight", curve).read_text()
    assert json.loads(Path("models/killed/run.json").read_text())["run_id"] == run_id  # same MLflow run
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_uri)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run_id, "meta_train_loss")] == [1, 2, 3, 4]


# ---------------------------------------------------------------- what a resume must match


def _set_params(root: Path, **sections: dict) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _weights(path: Path, seed: int) -> Path:
    import torchvision

    torch.manual_seed(seed)
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


@pytest.mark.slow  # four train() runs: ~9 s
def test_resume_needs_the_same_faces_and_weights_file(workspace):
    root = workspace
    _set_params(root, model={"pretrained": _weights(root / "weights.pth", 0).name}, train={"iterations": 2})
    assert train_workspace(root)[0].start_iteration == 0
    assert train_workspace(root)[0].start_iteration == 2  # same inputs: resumed, nothing left to train

    face = picked_face(root)  # same file name, other content: the model of the old faces is stale
    Image.open(face).transpose(Image.Transpose.ROTATE_90).save(face)
    assert train_workspace(root)[0].start_iteration == 0
    best = torch.load(root / "models/OCI-M/best.pt", weights_only=True)

    _weights(root / "weights.pth", 1)  # the same weights file name, other content
    assert train_workspace(root)[0].start_iteration == 0
    retrained = torch.load(root / "models/OCI-M/best.pt", weights_only=True)
    assert any(not torch.equal(best["model"][k], retrained["model"][k]) for k in best["model"])


def test_fingerprint_covers_scoring_and_leaves_out_output_neutral_knobs(workspace):
    from mpfas.train.loop import fingerprint

    root = workspace
    manifest, face = root / "data/manifests/OCI-M.csv", picked_face(root, "source-val")
    params = load_params(root / "params.yaml")
    base = fingerprint(params, "OCI-M", manifest, [str(face)], "ab")

    def fp_with(**sections) -> str:
        changed = replace(params, **{s: replace(getattr(params, s), **kv) for s, kv in sections.items()})
        return fingerprint(changed, "OCI-M", manifest, [str(face)], "ab")

    neutral = [{"score": {"batch_size": 7}}, {"evaluate": {"bootstrap": 3}}, {"runtime": {"experiment": "x"}},
               {"runtime": {"resume": "never"}}, {"runtime": {"checkpoint_every": 1}},
               {"runtime": {"train_workers": 2}}, {"runtime": {"device": "cuda"}},
               {"train": {"iterations": 50}}, {"train": {"channels_last": True}}]
    # the memory format resumes like another device (train/execution.py)
    assert [fp_with(**n) for n in neutral] == [base] * len(neutral)
    shaping = [{"score": {"faces_per_video": 3}}, {"score": {"precision": "bf16"}},
               {"train": {"seed": 1}}, {"train": {"eval_every": 7}},
               {"align": {"select": "confident"}}, {"extract": {"image_ext": "jpg"}}]  # recorded in best.pt
    assert base not in {fp_with(**s) for s in shaping}
    assert fingerprint(params, "OCI-M", manifest, [str(face)], "cd") != base
    face.write_bytes(face.read_bytes() + b"\0")
    assert fingerprint(params, "OCI-M", manifest, [str(face)], "ab") != base


def test_loader_threads_give_the_same_batches(workspace):
    """``runtime.train_workers > 0`` loads faces in threads: same batches, same order as inline (so the
    count may change on resume)."""
    rows = [r for r in manifest_rows(workspace) if r.role == "source-train"]

    def make(workers):
        return DomainSampler(rows, num_frames=2, batch_live=3, batch_spoof=3, size=32, seed=5, workers=workers)

    inline, threaded = make(0), make(3)
    assert inline.pool is None and threaded.pool is not None
    try:
        for domain in ("O", "C", "I") * 4:
            a, b = inline.batch(domain), threaded.batch(domain)
            assert torch.equal(a.rgb, b.rgb) and torch.equal(a.is_live, b.is_live), domain
    finally:
        threaded.close()


def test_the_face_cache_changes_no_batch_and_keeps_to_its_budget(workspace):
    """Training keeps decoded faces in memory (``FaceCache``): the same tensors as decoding each
    time, a caller's in-place edit never reaches the cache, and past ``max_bytes`` it decodes."""
    rows = [r for r in manifest_rows(workspace) if r.role == "source-train"]
    cached = DomainSampler(rows, num_frames=2, batch_live=3, batch_spoof=3, size=32, seed=5)
    uncached = DomainSampler(rows, num_frames=2, batch_live=3, batch_spoof=3, size=32, seed=5,
                             cache=FaceCache(32, max_bytes=0))
    for domain in ("O", "C", "I") * 6:  # long enough to draw faces a second time
        a, b = cached.batch(domain), uncached.batch(domain)
        assert torch.equal(a.rgb, b.rgb) and torch.equal(a.is_live, b.is_live), domain
    assert len(cached.cache) > 0 and len(uncached.cache) == 0
    face = rows[0].faces[0]
    cache = FaceCache(32, max_bytes=2 * 3 * 32 * 32)
    first = cache.load(face)
    assert torch.equal(first, load_face(face, 32))
    first.zero_()
    assert torch.equal(cache.load(face), load_face(face, 32))
    for other in rows[1].faces + rows[2].faces:
        cache.load(other)
    assert len(cache) == 2 and cache.bytes == 2 * 3 * 32 * 32
    with pytest.raises(ValueError, match="32 px"):
        DomainSampler(rows, num_frames=2, batch_live=3, batch_spoof=3, size=64, seed=5, cache=cache)


def test_a_batch_is_its_faces_decoded_and_flipped_one_by_one(workspace):
    """The sampler stacks, flips and scales a whole batch at once: every image must still be one
    of the domain's faces of its class as ``load_face`` decodes it, or its mirror image."""
    rows = [r for r in manifest_rows(workspace) if r.role == "source-train"]
    faces = {p: (r, load_face(p, 32)) for r in rows for p in r.faces}
    sampler = DomainSampler(rows, num_frames=2, batch_live=3, batch_spoof=3, size=32, seed=5)

    class Flips:  # the sampler's generator, but the flip draws are known: images 1 and 4 of each batch
        def __init__(self, rng):
            self.rng = rng

        def permutation(self, n):
            return self.rng.permutation(n)

        def random(self, n):
            return np.array([0.9, 0.1, 0.9, 0.9, 0.1, 0.9])[:n]  # < 0.5 flips

    sampler.rng = Flips(sampler.rng)
    for domain in ("O", "C", "I") * 3:
        batch = sampler.batch(domain)
        for i, (img, live) in enumerate(zip(batch.rgb, batch.is_live.tolist())):
            same = [r for r, f in faces.values() if torch.equal(img, f.flip(-1) if i in (1, 4) else f)]
            assert same, (domain, i)
            assert all(r.domain == domain and r.is_live == live for r in same)


def test_a_gpu_keeps_at_most_a_quarter_of_its_memory_for_faces():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert cache_budget(cpu) == 4 << 30
    assert cache_budget(gpu, gpu_memory=8 << 30) == 2 << 30  # an 8 GB card keeps 6 GB to train
    assert cache_budget(gpu, gpu_memory=80 << 30) == 4 << 30  # capped as in host memory


def test_pixels_scale_to_the_same_floats_on_any_device():
    """A face cached on a GPU is scaled there by a table the CPU computed: every uint8 value must
    give the CPU division's float, bit for bit (a GPU's scalar division may not)."""
    values = torch.arange(256, dtype=torch.uint8).view(1, 16, 16)
    assert torch.equal(scale_by_table(values), values.float().div_(255.0))  # what a GPU's cache uses
    assert torch.equal(to_unit(values), values.float().div_(255.0))
    assert scale_by_table(values).dtype == torch.float32 and scale_by_table(values).device == values.device


@pytest.mark.slow  # three train() runs
def test_resume_never_retrains_from_zero_despite_a_finished_last_pt(workspace):
    root = workspace
    _set_params(root, train={"iterations": 2, "eval_every": 2, "inner_loops": 1}, runtime={"checkpoint_every": 1})
    first, saved = train_workspace(root)
    assert first.start_iteration == 0 and saved == [1, 2]
    weights = torch.load("models/OCI-M/last.pt", weights_only=True)["model"]
    again, saved = train_workspace(root)  # resume: auto finds last.pt at the end: nothing to train
    assert again.start_iteration == 2 and saved == []
    _set_params(root, runtime={"resume": "never"})
    fresh, saved = train_workspace(root)
    assert fresh.start_iteration == 0 and saved == [1, 2] and fresh.run_id != first.run_id
    last = torch.load("models/OCI-M/last.pt", weights_only=True)
    assert last["iteration"] == 2 and last["run_id"] == fresh.run_id
    assert all(torch.equal(last["model"][k], weights[k]) for k in weights)  # retrained, same seed


def test_mlflow_holds_every_iteration_before_each_checkpoint(workspace, mlflow_uri):
    """Metrics reach MLflow in batches (``METRICS_FLUSH_EVERY`` iterations), but every checkpoint
    first writes what is kept back: a resume backfills the curves from MLflow up to ``last.pt``."""
    from mlflow.tracking import MlflowClient

    from mpfas.train import train

    _set_params(workspace, train={"iterations": 7, "eval_every": 7, "inner_loops": 1}, runtime={"checkpoint_every": 3})
    client, seen = MlflowClient(mlflow_uri), {}

    def at_checkpoint(it: int) -> None:
        (run,) = client.search_runs(client.get_experiment_by_name("test-training").experiment_id,
                                    filter_string="attributes.status = 'RUNNING'")
        seen[it] = [m.step for m in client.get_metric_history(run.info.run_id, "meta_train_loss")]

    result = train(load_params(workspace / "params.yaml"), "OCI-M", manifest="data/manifests/OCI-M.csv",
                   faces="data/faces", out_dir="models/OCI-M", on_checkpoint=at_checkpoint)
    assert seen == {3: [1, 2, 3], 6: [1, 2, 3, 4, 5, 6], 7: list(range(1, 8))}
    assert [m.step for m in client.get_metric_history(result.run_id, "meta_train_loss")] == list(range(1, 8))


# ---------------------------------------------------------------- a best.pt from elsewhere

@pytest.mark.slow  # three train() runs
def test_a_foreign_best_pt_is_never_adopted(workspace, mlflow_uri):
    """A finished run whose best.pt was replaced (another run's, or deleted): the choice among its
    iterations cannot be made again, so training starts over in a new run; the finished run
    keeps its status."""
    from mlflow.tracking import MlflowClient

    root = workspace
    _set_params(root, train={"iterations": 2, "eval_every": 1, "inner_loops": 1}, runtime={"checkpoint_every": 1})
    first, _ = train_workspace(root)
    other, _ = train_workspace(root, "models/other")  # the same settings, but another run
    foreign = torch.load(root / "models/other/best.pt", weights_only=True)
    assert foreign["run_id"] == other.run_id != first.run_id
    (root / "models/OCI-M/best.pt").write_bytes((root / "models/other/best.pt").read_bytes())

    again, saved = train_workspace(root)
    assert again.start_iteration == 0 and saved == [1, 2] and again.run_id not in (first.run_id, other.run_id)
    best = torch.load(root / "models/OCI-M/best.pt", weights_only=True)
    assert best["run_id"] == again.run_id
    assert MlflowClient(mlflow_uri).get_run(first.run_id).info.status == "FINISHED"

    (root / "models/OCI-M/best.pt").unlink()
    assert train_workspace(root)[0].start_iteration == 0


@pytest.mark.slow  # two train() runs
def test_a_tracking_call_failing_for_good_stops_training_and_a_rerun_resumes(workspace, mlflow_uri, monkeypatch):
    """MLflow losing the run mid-training (deleted in the UI, disk gone): train stops with one line
    naming the run and what was not logged; the next run resumes from last.pt in the same run."""
    from mlflow.tracking import MlflowClient

    from mpfas import tracking

    root = workspace
    _set_params(root, train={"iterations": 3, "eval_every": 3, "inner_loops": 1}, runtime={"checkpoint_every": 1})
    real = MlflowClient.log_batch

    def gone_at_step_2(self, run_id, metrics=(), **kwargs):
        if any(m.step == 2 for m in metrics):
            raise RuntimeError("RESOURCE_DOES_NOT_EXIST: run is gone")
        return real(self, run_id, metrics=metrics, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(MlflowClient, "log_batch", gone_at_step_2)
        with pytest.raises(tracking.TrackingError) as err:
            train_workspace(root)
    message = str(err.value)
    assert "\n" not in message and "could not log metrics" in message and "at step 2" in message
    killed = torch.load(root / "models/OCI-M/last.pt", weights_only=True)
    assert killed["iteration"] == 1
    again, saved = train_workspace(root)
    assert again.start_iteration == 1 and saved == [2, 3] and again.run_id == killed["run_id"]
