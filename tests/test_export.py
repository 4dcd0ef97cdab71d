"""ONNX export (real onnxruntime) and the MLflow pyfunc model (real sqlite store), both
checked against PyTorch on real aligned demo faces (MTCNN + the pipeline's warp)."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import yaml

from helpers import REPO
from helpers.checkpoints import SIZE, TRAINED_ON, make_checkpoint, real_faces
from mpfas.__main__ import main
from mpfas.models.inference import load_faces, score_frames
from mpfas.serve.export import OUTPUT_NAMES, export_onnx, run_onnx, torch_outputs
from mpfas.serve.predict import load_model

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> list:
    return real_faces(tmp_path_factory)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", threshold=0.4321)


@pytest.mark.slow  # real MTCNN faces + two ONNX exports: ~20 s
def test_onnx_matches_pytorch_on_real_faces(checkpoint, faces, tmp_path):
    """The default (dynamo) exporter; the TorchScript one is checked through the CLI below."""
    out = tmp_path / "model.onnx"
    report = export_onnx(checkpoint, out)
    assert report.max_abs_diff <= TOLERANCE and out.is_file()
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no leftovers

    model = load_model(checkpoint).model
    rgb = load_faces(faces, SIZE).numpy()  # the tensors evaluation feeds the model
    assert len(rgb) >= 5 and rgb.min() >= 0.0 and rgb.max() <= 1.0
    for batch in (rgb, rgb[:1]):  # dynamic batch: the whole set, and a single face
        got, ref = run_onnx(out, batch), torch_outputs(model, batch)
        for name in OUTPUT_NAMES:
            diff = float(np.abs(got[name] - ref[name]).max())
            print(f"dynamo {name} batch={len(batch)}: max|onnx-torch| = {diff:.3g}")
            assert got[name].shape == ref[name].shape
            assert diff <= TOLERANCE, (name, diff)
    # the score output is the pipeline's frame score (what score_frames returns)
    np.testing.assert_allclose(run_onnx(out, rgb)["score"], score_frames(model, faces, SIZE, 8, "cpu"),
                               rtol=0, atol=TOLERANCE)
    # and the scores are not trivially equal (the check would be blind otherwise)
    assert np.ptp(torch_outputs(model, rgb)["logits"][:, 1]) > 1e-3

    proto = onnx.load(str(out))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert float(meta["threshold"]) == pytest.approx(0.4321) and meta["input_size"] == str(SIZE)
    assert meta["protocol"] == "OCI-M" and meta["backbone"] == "resnet18"
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [3, SIZE, SIZE] and not dims[0].dim_value  # symbolic batch


def test_export_cli_legacy_exporter(checkpoint, faces, tmp_path, capsys, caplog):
    out = tmp_path / "sub" / "m.onnx"
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["align"].update(crop_size=SIZE, padding=0.2)  # not what the checkpoint's faces were made with
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["export", "--model", str(checkpoint), "--out", str(out), "--legacy",
                 "--params", str(tmp_path / "params.yaml")]) == 0
    assert out.is_file() and '"exporter": "torchscript"' in capsys.readouterr().out
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["preprocess"]) == TRAINED_ON.as_dict() and meta["preprocess_source"] == "checkpoint"
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "mpfas.models.checkpoint"]
    assert "align.padding checkpoint 0.37 vs params.yaml 0.2" in warning and "crop_size" not in warning
    rgb = load_faces(faces, SIZE).numpy()
    got, ref = run_onnx(out, rgb), torch_outputs(load_model(checkpoint).model, rgb)
    diff = max(float(np.abs(got[n] - ref[n]).max()) for n in OUTPUT_NAMES)
    with capsys.disabled():
        print(f"torchscript: max|onnx-torch| over {OUTPUT_NAMES} = {diff:.3g}")
    assert diff <= TOLERANCE
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", "--model", str(bad), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "bad.pt" in err and "not a readable mpfas checkpoint" in err
    assert not (tmp_path / "x.onnx").exists()


def test_export_refuses_when_onnxruntime_disagrees(checkpoint, tmp_path, capsys):
    """A model whose outputs are ~1e6: float rounding that differs between onnxruntime and PyTorch
    (invisible at the usual scale) then exceeds the tolerance, and export refuses to write it."""
    ckpt = torch.load(checkpoint, weights_only=True)
    ckpt["model"]["hfn.classifier.weight"] *= 1e6  # logits ~1e6: the two runtimes' rounding shows
    loud = tmp_path / "loud.pt"
    torch.save(ckpt, loud)
    out = tmp_path / "loud.onnx"
    capsys.readouterr()
    assert main(["export", "--model", str(loud), "--out", str(out), "--legacy"]) == 2
    err = capsys.readouterr().err
    match = re.search(r"loud\.onnx: onnxruntime differs from PyTorch by (\S+) \(> 0\.0001\); not written", err)
    assert match and len(err.strip().splitlines()) == 1, err
    assert float(match.group(1)) > 1e-3 and not out.exists() and not list(tmp_path.glob(".*.tmp"))


# ------------------------------------------------------------------ MLflow: `mpfas log-model`


@pytest.fixture(scope="module")
def logged(checkpoint, tmp_path_factory) -> dict:
    """`mpfas log-model --protocol OCI-M` in a project whose params.yaml has other align settings
    than the checkpoint's faces: its run from models/OCI-M/run.json, a real sqlite store."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("project")
    uri = f"sqlite:///{(root / 'mlflow.db').as_posix()}"
    client = MlflowClient(uri)
    exp = client.create_experiment("predict-test", artifact_location=(root / "artifacts").as_uri())
    run = client.create_run(exp, run_name="OCI-M")
    client.set_terminated(run.info.run_id, "FINISHED")
    before = client.get_run(run.info.run_id).info
    (root / "models" / "OCI-M").mkdir(parents=True)
    (root / "models" / "OCI-M" / "best.pt").write_bytes(checkpoint.read_bytes())
    (root / "models" / "OCI-M" / "run.json").write_text(json.dumps({"run_id": run.info.run_id}))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["align"]["padding"] = 0.2
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.chdir(root)
        rc = main(["log-model", "--protocol", "OCI-M", "--tracking-uri", uri])
    assert rc == 0
    printed = json.loads(out.getvalue())
    print(f"log-model: the ONNX model added {printed['onnx_seconds']} s (export, parity check, logging)")
    return {"uri": uri, "root": root, "experiment": exp, "run": before, **printed}


@pytest.fixture
def tracking_uri(logged):
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(logged["uri"])
    yield logged["uri"]
    mlflow.set_tracking_uri(previous)


def test_mlflow_pyfunc_model_scores_like_pytorch(logged, tracking_uri, checkpoint, faces):
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    after = client.get_run(logged["run_id"])
    assert logged["run_id"] == logged["run"].run_id and logged["checkpoint"] == "models/OCI-M/best.pt"
    assert (after.info.status, after.info.end_time) == ("FINISHED", logged["run"].end_time)  # left as it was
    models = {client.get_logged_model(m.model_id).name: client.get_logged_model(m.model_id)
              for m in after.outputs.model_outputs}
    assert set(models) == {"model", "model_onnx"}
    assert all(m.experiment_id == logged["experiment"] for m in models.values())  # not Default
    assert (logged["root"] / "artifacts").is_dir()

    pyfunc = mlflow.pyfunc.load_model(logged["model_uri"])
    meta = pyfunc.metadata.metadata
    assert meta["threshold"] == pytest.approx(0.4321) and meta["model_config"]["input_size"] == SIZE
    # the checkpoint's preprocessing, not the project's params.yaml (padding 0.2)
    assert meta["preprocess"] == TRAINED_ON.as_dict() and meta["preprocess_source"] == "checkpoint"

    rgb = load_faces(faces, SIZE).numpy()
    scores = np.asarray(pyfunc.predict(rgb))
    expected = score_frames(load_model(checkpoint).model, faces, SIZE, 32, "cpu")
    assert scores.shape == (len(faces),) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)
    with pytest.raises(Exception, match=str(SIZE)):  # a batch of the wrong size is refused
        pyfunc.predict(np.zeros((1, 3, SIZE * 2, SIZE * 2), np.float32))


def test_mlflow_onnx_model_runs_no_pickled_code(logged, tracking_uri, checkpoint, faces):
    """The ONNX flavour loads without unpickling anything and scores as PyTorch does (export's tolerance)."""
    import mlflow
    import mlflow.onnx
    import onnxruntime as ort

    local = Path(mlflow.artifacts.download_artifacts(logged["onnx_model_uri"]))
    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".py", ".pt"))], files
    flavors = yaml.safe_load((local / "MLmodel").read_text())["flavors"]
    assert set(flavors) == {"onnx", "python_function"}
    assert flavors["python_function"]["loader_module"] == "mlflow.onnx"

    rgb = load_faces(faces, SIZE).numpy()
    expected = score_frames(load_model(checkpoint).model, faces, SIZE, 32, "cpu")
    proto = mlflow.onnx.load_model(logged["onnx_model_uri"])
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(run_onnx(session, rgb)["score"], expected, rtol=0, atol=TOLERANCE)
    pyfunc = mlflow.pyfunc.load_model(logged["onnx_model_uri"])
    np.testing.assert_allclose(pyfunc.predict(rgb)["score"], expected, rtol=0, atol=TOLERANCE)
    meta = pyfunc.metadata.metadata
    assert meta["preprocess"] == TRAINED_ON.as_dict() and meta["threshold"] == pytest.approx(0.4321)
    assert pyfunc.metadata.signature.inputs.inputs[0].shape == (-1, 3, SIZE, SIZE)


def test_log_model_cli_errors_name_what_is_missing(logged, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(logged["root"])
    for args, words in ((["--protocol", "ICM-O"], "--run-id not given and models/ICM-O/run.json not found"),
                        (["--protocol", "OCI-M", "--run-id", "0" * 32], f"run {'0' * 32} not found in")):
        capsys.readouterr()
        assert main(["log-model", *args, "--tracking-uri", logged["uri"]]) == 2
        err = capsys.readouterr().err
        assert words in err and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
