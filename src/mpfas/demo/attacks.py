"""Presentation attacks: printed photos and screens, as textures on a rigid plane.

Prints are rendered at twice the camera's resolution with CMY halftone dots,
reduced gamut and paper tint inside a white border (the paper edge stays
visible); CASIA's warped photos bend, cut photos have the eyes cut out. Screens
show their content through an RGB sub-pixel grid (which aliases into moire once
the camera resamples it), with a gamma and white-point shift, raised black
level, glare and a bezel. Screens emit light, so the room light does not shade
them; paper does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class PrintStyle:
    period: float = 4.0              # halftone cell, texels
    black: float = 0.12              # ink cannot reach black
    white: float = 0.9               # nor paper white
    saturation: float = 0.75
    tint: tuple[float, float, float] = (0.97, 0.95, 0.88)  # paper colour
    border: float = 0.06             # white margin around the photo, fraction of paper width
    aspect: float = 0.75             # paper width / height
    cut_eyes: bool = False
    bend: bool = False


@dataclass(frozen=True)
class ScreenStyle:
    density: float = 1.2             # display pixels per camera pixel across the screen
    gamma: float = 0.85              # screens lift mid-tones
    white: tuple[float, float, float] = (0.9, 0.97, 1.08)  # cold white point
    black: float = 0.07              # backlight bleed
    brightness: float = 1.1
    bezel: float = 0.06              # fraction of screen width
    bezel_rgb: tuple[float, float, float] = (0.06, 0.06, 0.07)
    glare: float = 0.3


PRINTERS = {
    "printer1": PrintStyle(period=4.0, saturation=0.8, tint=(0.98, 0.96, 0.9)),
    "printer2": PrintStyle(period=5.0, black=0.18, saturation=0.65, tint=(0.96, 0.95, 0.92)),
    "photo": PrintStyle(period=3.5, black=0.1, saturation=0.85, tint=(0.97, 0.96, 0.92)),
    "warped_photo": PrintStyle(period=4.0, saturation=0.8, bend=True),
    "cut_photo": PrintStyle(period=4.0, saturation=0.8, cut_eyes=True),
}
SCREENS = {
    "display1": ScreenStyle(density=0.9, gamma=0.9, white=(0.92, 0.98, 1.1), bezel=0.05, glare=0.2),
    "display2": ScreenStyle(density=1.3, gamma=0.9, white=(0.95, 0.97, 1.05), bezel=0.04, glare=0.35),
    "ipad": ScreenStyle(density=1.1, gamma=0.95, white=(0.9, 0.97, 1.1), bezel=0.08, glare=0.22),
    "iphone": ScreenStyle(density=0.8, gamma=0.9, white=(0.95, 0.95, 1.05), black=0.1, bezel=0.1,
                          glare=0.25),
}


def halftone(photo: np.ndarray, style: PrintStyle) -> np.ndarray:
    """Soft CMY halftone dots on rotated screens, reduced gamut, paper tint."""
    h, w = photo.shape[:2]
    grey = photo.mean(axis=2, keepdims=True)
    photo = grey + (photo - grey) * style.saturation
    photo = style.black + (style.white - style.black) * np.clip(photo, 0, 1)
    ink = 1 - photo  # CMY coverage
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty_like(photo)
    for c, deg in enumerate((15.0, 75.0, 0.0)):
        a = np.deg2rad(deg)
        u = (xx * np.cos(a) + yy * np.sin(a)) * (2 * np.pi / style.period)
        v = (-xx * np.sin(a) + yy * np.cos(a)) * (2 * np.pi / style.period)
        screen = 0.5 + 0.25 * (np.cos(u) + np.cos(v))  # dot-centre threshold in [0, 1]
        dots = 1 / (1 + np.exp(-(ink[..., c] - screen) * 10))
        out[..., c] = 1 - dots
    return out * np.float32(style.tint)


def print_texture(photo: np.ndarray, style: PrintStyle, eyes: tuple[tuple[float, float], ...] = ()) -> np.ndarray:
    """Paper texture: halftoned ``photo`` inside a tinted border.

    ``eyes`` are eye centres in ``photo`` pixels; with ``cut_eyes`` they become
    holes that show the attacker's (unprinted, shadowed) eyes behind the paper.
    """
    ph, pw = photo.shape[:2]
    b = round(style.border * pw)
    paper = np.ones((ph + 2 * b, pw + 2 * b, 3), np.float32) * np.float32(style.tint)
    paper[b:b + ph, b:b + pw] = halftone(photo, style)
    if style.cut_eyes and eyes:
        hole = np.zeros(paper.shape[:2], np.float32)
        r = 0.06 * pw
        for x, y in eyes:
            cv2.ellipse(hole, (int(x + b), int(y + b)), (int(1.4 * r), int(0.8 * r)), 0, 0, 360, 1.0, -1)
        hole = cv2.GaussianBlur(hole, (0, 0), 1.0)[..., None]
        behind = np.zeros_like(paper)
        behind[b:b + ph, b:b + pw] = photo * 0.7
        paper = hole * behind + (1 - hole) * paper
    return paper


def bend(texture: np.ndarray, amount: float) -> tuple[np.ndarray, np.ndarray]:
    """Bend paper around a vertical axis by ``amount`` radians at the edges.

    Returns the bent texture (same size, narrower content) and its alpha.
    """
    h, w = texture.shape[:2]
    theta = max(float(amount), 1e-3)
    x = (np.arange(w, dtype=np.float32) - w / 2) / (w / 2)       # output column in [-1, 1]
    half = np.sin(theta) / theta                                  # projected half-width
    valid = (np.abs(x) <= half).astype(np.float32)
    u = np.arcsin(np.clip(x * theta, -np.sin(theta), np.sin(theta))) / theta  # source column
    depth = np.cos(u * theta) - np.cos(theta)                     # nearer the camera in the middle
    y = (np.arange(h, dtype=np.float32) - h / 2)[:, None]
    map_x = np.broadcast_to((u * w / 2 + w / 2)[None, :], (h, w)).astype(np.float32)
    map_y = (y / (1 + 0.15 * depth[None, :]) + h / 2).astype(np.float32)
    out = cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = cv2.remap(np.ones((h, w), np.float32), map_x, map_y, cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_CONSTANT) * valid[None, :]
    shade = (0.8 + 0.2 * np.cos(u * theta * 1.5))[None, :, None]
    return out * shade, alpha


@functools.lru_cache(maxsize=4)
def _screen_static(h: int, w: int, style: ScreenStyle, glare_at: tuple[float, float]):
    """Per-video constants of a screen: sub-pixel mask + glare, bezel alpha."""
    cell = np.full((3, 3, 3), 0.8, np.float32)       # colour cross-talk between sub-pixels
    for k in range(3):
        cell[:, k, k] = 1.0
    cell[2] *= 0.88                                   # darker gap between pixel rows
    cell /= cell.mean(axis=(0, 1), keepdims=True)     # keep the average brightness
    mask = np.tile(cell, (h // 3, w // 3, 1))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = glare_at
    glare = style.glare * np.exp(-(((xx / w - gx) / 0.25) ** 2 + ((yy / h - gy) / 0.18) ** 2))
    b = round(style.bezel * w)
    th, tw = h + 2 * b, w + 2 * b
    alpha = np.zeros((th, tw), np.float32)
    r = max(2 * b, 4)
    cv2.rectangle(alpha, (r, 0), (tw - r, th), 1.0, -1)
    cv2.rectangle(alpha, (0, r), (tw, th - r), 1.0, -1)
    for cx, cy in ((r, r), (tw - r, r), (r, th - r), (tw - r, th - r)):
        cv2.circle(alpha, (cx, cy), r, 1.0, -1)
    return mask, np.repeat(glare[..., None], 3, axis=2), b, alpha


def screen_texture(content: np.ndarray, style: ScreenStyle,
                   glare_at: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Screen with bezel at 3 texels per display pixel; returns (rgb, alpha).

    ``content`` is the displayed image at display resolution (float RGB);
    ``glare_at`` is the glare centre as fractions of the screen.
    """
    img = cv2.pow(np.clip(content, 0, 1).astype(np.float32), style.gamma)
    img *= np.float32(style.white) * np.float32(style.brightness * (1 - style.black))
    img += np.float32(style.black)
    dh, dw = img.shape[:2]
    up = cv2.resize(img, (3 * dw, 3 * dh), interpolation=cv2.INTER_NEAREST)
    mask, glare, b, alpha = _screen_static(3 * dh, 3 * dw, style, glare_at)
    np.multiply(up, mask, out=up)
    np.add(up, glare, out=up)
    tex = cv2.copyMakeBorder(up, b, b, b, b, cv2.BORDER_CONSTANT, value=tuple(float(v) for v in style.bezel_rgb))
    return tex, alpha
