"""HFN + Meta Pattern models: structure, shapes, scores, gradients, weight loading."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch.func import functional_call

from helpers import param_defaults as dflt
from helpers.foreign_pickle import save_foreign
from mpfas.core.config import ConfigError
from mpfas.models import (
    HSVPattern,
    LBPPattern,
    MetaPatternExtractor,
    MetaPatternFAS,
    ModelOutput,
    RandomInitWarning,
    YCrCbPattern,
    build_model,
    frame_score,
    load_pretrained,
)
from mpfas.models.weights import sha256_of

SMALL = 64  # smallest legal input (multiple of 32): keeps CPU tests fast


def _count(params) -> int:
    return sum(p.numel() for p in params)


def _model(pattern: str = "meta", backbone: str = "resnet18", size: int = SMALL) -> MetaPatternFAS:
    torch.manual_seed(0)
    return MetaPatternFAS(backbone, size, pattern)


def _hfn_loss(out: ModelOutput, is_live: torch.Tensor) -> torch.Tensor:
    target = is_live.float().view(-1, 1, 1, 1).expand_as(out.map)
    return F.mse_loss(out.map, target) + F.cross_entropy(out.logits, is_live)


# ---------------------------------------------------------------- structure


def test_paper_config_parameter_count():
    with torch.device("meta"), pytest.warns(RandomInitWarning):
        model = build_model(dflt.model(backbone="resnet50", input_size=256, pattern="meta"))
    n_hfn = _count(model.hfn_parameters())
    assert abs(n_hfn - 62.1e6) / 62.1e6 < 0.01, n_hfn
    # Two identical streams; map head (conv3x3 256->128, conv1x1 128->1) + Linear(256, 2).
    per_stream = _count(model.hfn.rgb_stream.parameters())
    assert _count(model.hfn.pattern_stream.parameters()) == per_stream
    assert n_hfn - 2 * per_stream == (256 * 128 * 9 + 128) + (128 + 1) + (256 * 2 + 2)
    assert _count(model.pattern_parameters()) == 351


def test_mp_extractor_layout():
    mp = MetaPatternExtractor()
    assert [p.numel() for p in mp.parameters()] == [162, 6, 6, 6, 162, 3, 3, 3]
    x = torch.rand(2, 3, 40, 40)
    y = mp(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("pattern", ["meta", "none", "hsv", "ycrcb", "lbp"])
def test_each_pattern_option_runs(pattern):
    model = _model(pattern).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, SMALL, SMALL))
    assert out.map.shape == (2, 1, SMALL // 8, SMALL // 8)
    assert out.logits.shape == (2, 2)
    if pattern == "none":
        assert model.pattern is None and out.pattern is None
        assert model.hfn.pattern_stream is None and len(model.hfn.streams) == 1
        two_stream = _model("meta")
        one_stream = _count(model.hfn.rgb_stream.parameters())
        assert _count(model.hfn_parameters()) == _count(two_stream.hfn_parameters()) - one_stream
    else:
        assert out.pattern.shape == (2, 3, SMALL, SMALL)
        assert out.pattern.min() >= 0 and out.pattern.max() <= 1
    if pattern == "meta":
        assert _count(model.pattern_parameters()) == 351
    else:
        assert model.pattern_parameters() == []
        if model.pattern is not None:
            assert _count(model.pattern.parameters()) == 0
    # pattern and HFN parameters partition the model's parameters.
    assert _count(model.parameters()) == _count(model.pattern_parameters()) + _count(model.hfn_parameters())


def test_output_shapes_resnet18_128():
    model = _model("meta", "resnet18", 128).eval()
    with torch.no_grad():
        out = model(torch.rand(3, 3, 128, 128))
    assert out.map.shape == (3, 1, 16, 16)  # stride 8
    assert out.logits.shape == (3, 2)
    assert out.pattern.shape == (3, 3, 128, 128)
    assert out.map.min() >= 0 and out.map.max() <= 1


def test_output_shapes_resnet50_256():
    model = _model("meta", "resnet50", 256).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 256, 256))
    assert out.map.shape == (1, 1, 32, 32)
    assert out.logits.shape == (1, 2)


def test_stream_inputs_follow_the_official_code():
    """RGB stream sees raw [0, 1] RGB; the pattern stream sees the ImageNet-normalised pattern."""
    model = _model("meta").eval()
    seen = {}
    for name in ("rgb_stream", "pattern_stream"):
        conv1 = getattr(model.hfn, name).body.conv1
        conv1.register_forward_pre_hook(lambda _m, args, name=name: seen.__setitem__(name, args[0]))
    rgb = torch.rand(2, 3, SMALL, SMALL)
    with torch.no_grad():
        out = model(rgb)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(seen["rgb_stream"], rgb)
    torch.testing.assert_close(seen["pattern_stream"], (out.pattern - mean) / std)


def test_fusion_of_identical_streams_is_the_single_stream_hfn():
    """Averaging two identical streams on identical inputs must give the one-stream HFN
    (pattern 'none') with the same weights: fusion is a mean at every level."""
    model = _model("meta").eval()
    model.hfn.pattern_stream.load_state_dict(model.hfn.rgb_stream.state_dict())
    single = _model("none").eval()
    shared = {k: v for k, v in model.hfn.state_dict().items() if not k.startswith("pattern_stream.")}
    single.hfn.load_state_dict(shared)
    rgb = torch.rand(2, 3, SMALL, SMALL)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        fused = model.hfn(rgb, rgb * std + mean)  # normalises back to exactly rgb
        alone = single.hfn(rgb, None)
    torch.testing.assert_close(fused.map, alone.map)
    torch.testing.assert_close(fused.logits, alone.logits)
    # ...and different streams do change the result (the second stream is used).
    with torch.no_grad():
        other = model.hfn(rgb, torch.rand_like(rgb))
    assert not torch.allclose(other.logits, fused.logits)


def test_wrong_input_size_is_rejected():
    with pytest.raises(ValueError, match=r"model\.input_size"):
        _model()(torch.rand(1, 3, SMALL + 32, SMALL + 32))
    with pytest.raises(ConfigError, match=r"model\.input_size"):
        build_model(dflt.model(input_size=100))


def test_hfn_stream_count_must_match_pattern():
    with pytest.raises(ValueError, match="needs a pattern"):
        _model("meta").hfn(torch.rand(1, 3, SMALL, SMALL), None)
    with pytest.raises(ValueError, match="'none'"):
        _model("none").hfn(torch.rand(1, 3, SMALL, SMALL), torch.rand(1, 3, SMALL, SMALL))


# ---------------------------------------------------------------- scores


def test_frame_score_range_and_formula():
    torch.manual_seed(1)
    out = ModelOutput(map=torch.rand(5, 1, 4, 4), logits=torch.randn(5, 2) * 10, pattern=None)
    score = frame_score(out)
    expected = (out.map.mean(dim=(1, 2, 3)) + out.logits.softmax(1)[:, 1]) / 2
    torch.testing.assert_close(score, expected)
    assert score.shape == (5,) and score.min() >= 0 and score.max() <= 1
    live = ModelOutput(torch.ones(1, 1, 4, 4), torch.tensor([[-20.0, 20.0]]), None)
    spoof = ModelOutput(torch.zeros(1, 1, 4, 4), torch.tensor([[20.0, -20.0]]), None)
    assert frame_score(live).item() == pytest.approx(1.0, abs=1e-6)
    assert frame_score(spoof).item() == pytest.approx(0.0, abs=1e-6)
    model = _model().eval()
    with torch.no_grad():
        real = frame_score(model(torch.rand(4, 3, SMALL, SMALL)))
    assert real.shape == (4,) and real.min() >= 0 and real.max() <= 1


# ---------------------------------------------------------------- handcrafted patterns


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.random((24, 20, 3), dtype=np.float32)
    img[0, :4] = [[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5], [1, 0, 1]]  # grey / tie cases
    return img


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None]


def test_hsv_matches_opencv():
    img = _image()
    ref = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    ref[..., 0] /= 360.0
    got = HSVPattern()(_to_tensor(img))[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_ycrcb_matches_opencv():
    img = _image(1)
    ref = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)
    got = YCrCbPattern()(_to_tensor(img))[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-3)


def test_lbp_codes():
    patch = torch.tensor([[5.0, 9.0, 1.0], [4.0, 6.0, 7.0], [2.0, 6.0, 3.0]]) / 10
    # Clockwise from top-left: 5 9 1 7 3 6 2 4 vs centre 6 -> bits 1 (9), 3 (7), 5 (6, tie counts).
    code = LBPPattern()(patch.expand(1, 3, 3, 3))
    assert code[0, :, 1, 1].tolist() == pytest.approx([(2 + 8 + 32) / 255] * 3)
    flat = LBPPattern()(torch.full((1, 3, 5, 5), 0.3))
    assert torch.all(flat == 1.0)  # every neighbour ties -> all bits set


# ---------------------------------------------------------------- gradients


def test_hfn_loss_reaches_the_mp_extractor():
    model = _model("meta").train()
    is_live = torch.tensor([1, 0, 1, 0])
    loss = _hfn_loss(model(torch.rand(4, 3, SMALL, SMALL)), is_live)
    loss.backward()
    for name, p in model.pattern.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.hfn.rgb_stream.body.conv1.weight.grad.abs().sum() > 0
    assert model.hfn.pattern_stream.body.conv1.weight.grad.abs().sum() > 0


def test_functional_virtual_step_on_hfn():
    """The bilevel trainer's pattern: a virtual HFN step, then a loss differentiated into MP."""
    model = _model("meta").train()
    rgb, is_live = torch.rand(2, 3, SMALL, SMALL), torch.tensor([1, 0])
    params = dict(model.hfn.named_parameters())
    pattern = model.pattern(rgb)
    inner = _hfn_loss(functional_call(model.hfn, params, (rgb, pattern)), is_live)
    grads = torch.autograd.grad(inner, list(params.values()), create_graph=True)
    fast = {k: v - 1e-3 * g for (k, v), g in zip(params.items(), grads)}
    plain = model.hfn(rgb, pattern)
    torch.testing.assert_close(plain.map, functional_call(model.hfn, params, (rgb, pattern)).map)
    outer = _hfn_loss(functional_call(model.hfn, fast, (rgb, model.pattern(rgb))), is_live)
    mp_grads = torch.autograd.grad(outer, model.pattern_parameters())
    assert all(g.abs().sum() > 0 for g in mp_grads)


# ---------------------------------------------------------------- pretrained weights


def _streams_conv1(model: MetaPatternFAS) -> list[torch.Tensor]:
    return [s.body.conv1.weight for s in model.hfn.streams]


def test_load_pretrained_round_trip(tmp_path):
    torch.manual_seed(3)
    net = torchvision.models.resnet18(weights=None)
    state = net.state_dict()
    # Old torchvision files lack BN counters; both forms must load.
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(state, path)
    cfg = dflt.model(backbone="resnet18", input_size=SMALL, pattern="meta", pretrained=str(path))
    model = build_model(cfg)
    assert model.pretrained_sha256 == sha256_of(path)
    for stream in model.hfn.streams:
        for key, value in stream.body.state_dict().items():
            if key in state:
                assert torch.equal(value, state[key]), key
    a, b = _streams_conv1(model)
    assert a.data_ptr() != b.data_ptr()  # independent copies, not tied weights
    a.data.add_(1)
    assert not torch.equal(a, b)


def test_load_pretrained_accepts_fc_and_module_prefix(tmp_path):
    state = {f"module.{k}": v for k, v in torchvision.models.resnet18(weights=None).state_dict().items()}
    path = tmp_path / "dp.pth"
    torch.save(state, path)
    model = _model("none")
    load_pretrained(model, path)
    assert torch.equal(model.hfn.rgb_stream.body.layer4[1].bn2.running_var, state["module.layer4.1.bn2.running_var"])


def test_wrong_architecture_is_rejected(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    model = _model("meta", "resnet18")
    before = model.hfn.rgb_stream.body.conv1.weight.clone()
    with pytest.raises(ValueError, match=r"resnet34\.pth.*resnet18.*looks like resnet34.*unexpected"):
        load_pretrained(model, path)
    assert torch.equal(model.hfn.rgb_stream.body.conv1.weight, before)  # nothing half-loaded
    path18 = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path18)
    with torch.device("meta"):
        big = MetaPatternFAS("resnet50", 256, "none")
    with pytest.raises(ValueError, match=r"'resnet50'.*looks like resnet18"):
        load_pretrained(big, path18)


def test_weights_only_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pth"
    marker = tmp_path / "payload-ran"
    save_foreign(path, marker, payload_key="conv1.weight")
    with pytest.raises(ValueError, match=r"evil\.pth.*weights_only"):
        load_pretrained(_model(), path)
    assert not marker.exists(), "the pickled code ran"


def test_not_a_state_dict_is_rejected(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"garbage\.pth"):
        load_pretrained(_model(), path)
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match="state dict"):
        load_pretrained(_model(), path)


def test_missing_weights_file_names_the_param(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match=r"model\.pretrained.*nope\.pth"):
        build_model(dflt.model(input_size=SMALL, pretrained=str(missing)))


def test_random_init_is_loud(caplog):
    with pytest.warns(RandomInitWarning, match="RANDOM"):
        model = build_model(dflt.model(input_size=SMALL))
    assert "RANDOM" in caplog.text
    assert model.pretrained_sha256 == ""
