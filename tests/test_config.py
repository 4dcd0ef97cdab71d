from pathlib import Path

import pytest
import yaml

from mpfas.core.config import ConfigError, Params, load_params
from mpfas.data import check_params
from mpfas.models.backbones import check_backbone
from mpfas.tracking import flat_params

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, mutate):
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    mutate(data)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_repo_params_load():
    params = load_params(ROOT / "params.yaml")
    assert isinstance(params, Params)
    assert params.train.meta_lr == pytest.approx(1e-2)
    assert params.model.pyramid_init == "official" and params.train.precision == "fp32"
    # a full real run does not stop at align: the official detector finds no face in 33 of the 1200
    # Replay-Attack and 180 of the 3497 ROSE-Youtu videos
    assert params.align.max_failed_videos["I"] >= 33 / 1200 and params.align.max_failed_videos["Y"] >= 180 / 3497
    assert set(params.data.protocols) <= set(params.manifests.protocols)
    assert len(params.manifests.protocols) == 9
    assert params.data.protocols == ["OCI-M", "OMI-C", "OCM-I", "ICM-O"]  # the Y protocols are opt-in
    assert {name: (p.sources, p.target) for name, p in params.manifests.protocols.items() if "Y" in p.domains} == {
        "ICY-O": (["I", "C", "Y"], "O"), "IMY-O": (["I", "M", "Y"], "O"), "MCY-O": (["M", "C", "Y"], "O")}


@pytest.mark.parametrize("mutate,key", [
    (lambda d: d["train"].update(inner_loop=3), "train.inner_loop"),
    (lambda d: d.update(trian={}), "trian"),
    (lambda d: d["train"].update(inner_loops=0), "train.inner_loops"),
    (lambda d: d["train"].update(meta_lr=-0.1), "train.meta_lr"),
    (lambda d: d["train"].update(iterations="many"), "train.iterations"),
    (lambda d: d["train"].update(iterations=2.5), "train.iterations"),
    (lambda d: d["model"].update(backbone="vgg16"), "model.backbone"),
    (lambda d: d["manifests"]["protocols"].update({"OCX-M": {"sources": ["O", "C", "X"], "target": "M"}}),
     "manifests.protocols.OCX-M"),
    (lambda d: d["data"].update(protocols=["OCI-Z"]), "data.protocols"),
    (lambda d: d["data"].update(source="real"), "data.roots.O"),
    (lambda d: d["data"].update(datasets=["O", "C", "I", "X"]), "data.datasets"),
    (lambda d: d["data"].update(datasets=["O", "C", "I", "M", "O"]), "data.datasets"),
    (lambda d: d["data"].update(datasets=["O", "C", "I"]), "data.datasets"),  # data.protocols use M
    (lambda d: d["extract"].update(max_failure_rate=2), "extract.max_failure_rate"),
    (lambda d: d["train"].update(first_order="yes"), "train.first_order"),
    (lambda d: d["train"].pop("eval_every"), "train.eval_every"),  # params.yaml is the one source of values
    (lambda d: d["train"].update(meta_lr=float("nan")), "train.meta_lr"),
    (lambda d: d["train"].update(meta_lr="inf"), "train.meta_lr"),
    (lambda d: d["train"].update(seed=2**32), "train.seed"),
    (lambda d: d["runtime"].update(experiment=""), "runtime.experiment"),
    (lambda d: d["align"]["max_failed_videos"].pop("M"), "align.max_failed_videos"),
    # names and folders that become paths stay inside the repository
    (lambda d: d["manifests"]["protocols"].update({"../../../x/evil": {"sources": ["O", "C"], "target": "M"}}),
     "manifests.protocols.../../../x/evil"),
    (lambda d: d["manifests"]["protocols"].update({"../faces/M/faces": {"sources": ["O", "C"], "target": "M"}}),
     "manifests.protocols.../faces/M/faces"),
    (lambda d: d["manifests"]["protocols"].update({".hidden": {"sources": ["O", "C"], "target": "M"}}),
     "manifests.protocols..hidden"),
    (lambda d: d["data"].update(demo_root="/srv/elsewhere"), "data.demo_root"),
    (lambda d: d["data"].update(demo_root="../outside"), "data.demo_root"),
])
def test_bad_params_name_the_key(tmp_path, mutate, key):
    """The parser (names and values) and the registry checks the stages run before any work."""
    with pytest.raises(ConfigError) as info:
        params = load_params(write(tmp_path, mutate))
        check_params(params)
        check_backbone(params.model.backbone, params.model.pretrained)
    assert key in str(info.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "p.yaml").write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "p.yaml")


def test_flatten_for_mlflow():
    flat = flat_params(load_params(ROOT / "params.yaml"))
    assert flat["train.inner_loops"] == "2" and flat["model.pretrained"] == "bundled"
    assert flat["manifests.protocols.OCI-M.target"] == "M"
    assert flat["data.roots.O"] == ""


def test_datasets_need_only_cover_the_trained_protocols(tmp_path):
    """data.datasets may leave out a dataset no protocol in data.protocols uses."""
    def mutate(d):
        d["data"]["datasets"] = ["M", "I", "C"]
        d["data"]["protocols"] = ["MI-C"]

    assert load_params(write(tmp_path, mutate)).data.datasets == ["M", "I", "C"]
