"""ONNX export (real onnxruntime) and the MLflow pyfunc model (real sqlite store), both
checked against PyTorch on real aligned demo faces (MTCNN + the pipeline's warp)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from mpfas.__main__ import main
from mpfas.export import OUTPUT_NAMES, export_onnx, run_onnx, torch_outputs
from mpfas.inference import load_faces, score_frames
from mpfas.predict import load_model
from test_predict import SIZE, make_checkpoint, real_faces

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> list:
    return real_faces(tmp_path_factory)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", threshold=0.4321)


def test_onnx_matches_pytorch_on_real_faces(checkpoint, faces, tmp_path):
    """The default (dynamo) exporter; the TorchScript one is checked through the CLI below."""
    out = tmp_path / "model.onnx"
    report = export_onnx(checkpoint, out)
    assert report.max_abs_diff <= TOLERANCE and out.is_file()
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no leftovers

    model = load_model(checkpoint).model
    rgb = load_faces(faces, SIZE).numpy()  # the tensors evaluation feeds the model
    assert len(rgb) >= 5 and 0.0 <= rgb.min() and rgb.max() <= 1.0
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


def test_export_cli_legacy_exporter(checkpoint, faces, tmp_path, capsys):
    out = tmp_path / "sub" / "m.onnx"
    assert main(["export", "--model", str(checkpoint), "--out", str(out), "--legacy"]) == 0
    assert out.is_file() and '"exporter": "torchscript"' in capsys.readouterr().out
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


def test_mlflow_pyfunc_model_scores_like_pytorch(checkpoint, faces, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from mpfas.mlflow_model import log_model

    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    client = MlflowClient(uri)
    exp = client.create_experiment("predict-test", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(exp, run_name="OCI-M")
    client.set_terminated(run.info.run_id, "FINISHED")
    before = client.get_run(run.info.run_id).info

    info = log_model(run.info.run_id, checkpoint, tracking_uri=uri)

    after = client.get_run(run.info.run_id)
    assert (after.info.status, after.info.end_time) == ("FINISHED", before.end_time)  # run left as it was
    assert [m.model_id for m in after.outputs.model_outputs] == [info.model_id]
    assert client.get_logged_model(info.model_id).experiment_id == exp  # the run's experiment, not Default
    assert (tmp_path / "artifacts").is_dir()

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    finally:
        mlflow.set_tracking_uri(previous)
    assert pyfunc.metadata.metadata["threshold"] == pytest.approx(0.4321)
    assert pyfunc.metadata.metadata["model_config"]["input_size"] == SIZE

    rgb = load_faces(faces, SIZE).numpy()
    scores = np.asarray(pyfunc.predict(rgb))
    expected = score_frames(load_model(checkpoint).model, faces, SIZE, 32, "cpu")
    assert scores.shape == (len(faces),) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)
    with pytest.raises(Exception, match=str(SIZE)):  # a batch of the wrong size is refused
        pyfunc.predict(np.zeros((1, 3, SIZE * 2, SIZE * 2), np.float32))

