"""A tiny training workspace: aligned-face PNGs cut from scikit-image's astronaut with a colour
cast per domain (spoofs desaturated, blurred and striped, print/replay-like, so there is
something to learn), their manifest, and params.yaml with a few knobs made small."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageFilter

from helpers import REPO
from mpfas.manifests.build import ManifestRow, write_manifest

CAST = {"O": (1.0, 0.95, 0.9), "C": (0.9, 1.0, 1.05), "I": (1.05, 1.0, 0.85), "M": (0.95, 0.9, 1.0)}


TINY = {
    "data": {"protocols": ["OCI-M"]},
    "model": {"backbone": "resnet18", "input_size": 64, "pattern": "meta", "pretrained": ""},
    "train": {"iterations": 3, "inner_loops": 2, "batch_live": 2, "batch_spoof": 2, "eval_every": 2, "seed": 666},
    "runtime": {"device": "cpu", "checkpoint_every": 2, "experiment": "test-training"},
}


def face_image(rng: np.random.Generator, domain: str, live: bool) -> Image.Image:
    from skimage.data import astronaut

    img = astronaut()[20:240, 150:370].astype(np.float32) / 255.0
    dy, dx = rng.integers(0, 12, size=2)
    img = img[dy : dy + 200, dx : dx + 200] * np.array(CAST[domain]) * rng.uniform(0.85, 1.1)
    if not live:
        grey = img.mean(axis=2, keepdims=True)
        img = 0.5 * img + 0.5 * grey
        stripes = 0.08 * np.sin(np.arange(200) / 1.7)[:, None, None]
        img = img + stripes + rng.normal(0, 0.03, img.shape)
    out = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).resize((64, 64))
    return out.filter(ImageFilter.GaussianBlur(1.2)) if not live else out


def make_workspace(root: Path, protocol: str = "OCI-M", sources=("O", "C", "I"), target="M",
                   train_videos: int = 3, val_videos: int = 2, frames: int = 3, overrides=None) -> Path:
    """Faces under root/data/faces, the manifest under root/data/manifests, a tiny params.yaml."""
    rng = np.random.default_rng(0)
    rows = []
    for domain in (*sources, target):
        roles = [("target", train_videos + val_videos)] if domain == target else [
            ("source-train", train_videos), ("source-val", val_videos)]
        for role, n in roles:
            for v in range(n):
                for live in (1, 0):
                    vid = f"{role}_{v}_{'live' if live else 'spoof'}"
                    faces = []
                    for f in range(frames):
                        rel = f"data/faces/{domain}/{vid}/f{f:05d}.png"
                        (root / rel).parent.mkdir(parents=True, exist_ok=True)
                        face_image(rng, domain, bool(live)).save(root / rel)
                        faces.append(rel)
                    rows.append(ManifestRow(dataset=domain, domain=domain, video_id=f"{domain}/{vid}",
                                            subject=f"{role}{v}", split="train", label="live" if live else "print",
                                            is_live=live, attack="" if live else "print", role=role, faces=faces))
    write_manifest(rows, root / f"data/manifests/{protocol}.csv")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in {**TINY, **(overrides or {})}.items():
        params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def manifest_rows(root: Path, protocol: str = "OCI-M"):
    """The rows of the workspace's manifest, faces resolved under it."""
    from mpfas.manifests.build import read_manifest

    return read_manifest(root / f"data/manifests/{protocol}.csv", faces_root=root / "data/faces")


def picked_face(root: Path, role: str = "source-train") -> Path:
    """A face the sampler (or validation) reads: the first frame of a video of ``role``."""
    from mpfas.manifests.build import read_manifest

    row = next(r for r in read_manifest(root / "data/manifests/OCI-M.csv", "data/faces") if r.role == role)
    return root / row.faces[0]


def train_workspace(root: Path, out_dir: str = "models/OCI-M"):
    """``train()`` of OCI-M in a :func:`make_workspace` folder (the working directory); returns
    its result and the iterations it checkpointed (none when nothing was left to train)."""
    from mpfas.core.config import load_params
    from mpfas.train import train

    saved: list[int] = []
    result = train(load_params(root / "params.yaml"), "OCI-M", manifest="data/manifests/OCI-M.csv",
                   faces="data/faces", out_dir=out_dir, on_checkpoint=saved.append)
    return result, saved
