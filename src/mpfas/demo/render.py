"""Render one demo video's frames from its :class:`VideoSpec` (pure, deterministic)."""

from __future__ import annotations

import cv2
import numpy as np

from mpfas.data import dataset_spec
from mpfas.data.demo_plan import VideoSpec
from mpfas.demo.attacks import PRINTERS, SCREENS, bend, print_texture, screen_texture
from mpfas.demo.camera import camera_for, capture
from mpfas.demo.faces import CANVAS_H, EYES, FACE_CENTER, Identity, make_portrait
from mpfas.demo.motion import hand_motion, head_motion, plane_homography, static_poses
from mpfas.demo.scene import background, light_map, paste_portrait, place_for, shade_portrait

FACE_FRACTION = 0.95  # portrait canvas height / frame height: the face is ~45% of the frame


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _warp_over(frame: np.ndarray, tex: np.ndarray, alpha: np.ndarray, hmat: np.ndarray,
               light: np.ndarray | None) -> np.ndarray:
    h, w = frame.shape[:2]
    fg = cv2.warpPerspective(tex, hmat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    a = cv2.warpPerspective(alpha, hmat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None]
    if light is not None:
        fg = fg * light
    return a * fg + (1 - a) * frame


def render_video(spec: VideoSpec, identity: Identity, seed: int, frames: int, fps: float,
                 scale: float, video_index: int) -> list[np.ndarray]:
    """uint8 RGB frames of one video."""
    cam = camera_for(spec.code, spec.capture, scale)
    w, h = cam.size
    key = dataset_spec(spec.code).demo.key  # the domain's random streams
    rng = _rng(seed, 101, key, video_index)
    place = place_for(spec.code, spec.capture)
    bg = background(place, (w, h), _rng(seed, 202, key, len(spec.capture), sum(map(ord, spec.capture))))
    light = light_map(place, (w, h))
    portrait = make_portrait(identity, seed)
    rgb = shade_portrait(portrait.rgb, place)
    out: list[np.ndarray] = []

    if spec.medium == "live":
        poses = head_motion(rng, frames, fps)
        cx, cy = w * rng.uniform(0.45, 0.55), h * rng.uniform(0.42, 0.48)
        for t in range(frames):
            scene = paste_portrait(bg, rgb, portrait.alpha, FACE_CENTER,
                                   (cx + poses.dx[t] * w, cy + poses.dy[t] * h),
                                   FACE_FRACTION * h * poses.scale[t], poses.angle[t])
            out.append(capture(scene * light, cam, rng))
        return out

    steady = 0.15 if spec.support == "fixed" else 1.0
    poses = hand_motion(rng, frames, fps, steady)
    center = (w * rng.uniform(0.46, 0.54), h * rng.uniform(0.47, 0.53))

    if spec.medium == "print":
        style = PRINTERS[spec.device]
        # the photo: the subject in front of a plain backdrop, lit by a flash
        paper_h = int(2 * h * 1.02)                 # 2 texels per camera pixel
        photo_h = int(paper_h / (1 + 2 * style.border * style.aspect))
        photo_w = int(photo_h * style.aspect)
        backdrop = np.ones((photo_h, photo_w, 3), np.float32) * np.float32(rng.uniform(0.55, 0.85, 3))
        anchor_y = 0.46 * photo_h
        photo = paste_portrait(backdrop, portrait.rgb, portrait.alpha, FACE_CENTER,
                               (photo_w / 2, anchor_y), 0.95 * photo_h, 0.0)
        k = 0.95 * photo_h / CANVAS_H
        eyes = [(photo_w / 2 + (x - FACE_CENTER[0]) * k, anchor_y + (y - FACE_CENTER[1]) * k) for x, y in EYES]
        tex = print_texture(photo, style, eyes)
        alpha = np.ones(tex.shape[:2], np.float32)
        paper_w_frame = tex.shape[1] / 2
        bends = 0.5 + 0.35 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * np.arange(frames) / fps
                                    + rng.uniform(0, 2 * np.pi))
        for t in range(frames):
            ttex, talpha = bend(tex, bends[t]) if style.bend else (tex, alpha)
            hm = plane_homography((ttex.shape[1], ttex.shape[0]), (center[0] + poses.dx[t] * w,
                                  center[1] + poses.dy[t] * h), paper_w_frame * poses.scale[t],
                                  poses.angle[t], poses.yaw[t], poses.pitch[t])
            scene = _warp_over(bg * light, ttex, talpha, hm, light)
            out.append(capture(scene, cam, rng))
        return out

    # replay: a recording of the subject, shown on a screen
    style = SCREENS[spec.device]
    content_h_frame = 0.92 * h
    aspect = (w / h) * rng.uniform(0.9, 1.1)
    dh = max(32, int(content_h_frame * style.density))  # display pixels high
    dw = int(dh * aspect)
    rec_place = place
    rec_bg = background(rec_place, (dw, dh), _rng(seed, 303, video_index))
    rec_poses = head_motion(rng, frames, fps) if spec.medium == "replay_video" else static_poses(frames)
    glare = (rng.uniform(0.2, 0.8), rng.uniform(0.15, 0.5))
    screen_w_frame = content_h_frame * aspect * (1 + 2 * style.bezel)
    for t in range(frames):
        content = paste_portrait(rec_bg, rgb, portrait.alpha, FACE_CENTER,
                                 (dw / 2 + rec_poses.dx[t] * dw, 0.47 * dh + rec_poses.dy[t] * dh),
                                 0.98 * dh * rec_poses.scale[t], rec_poses.angle[t])
        content = cv2.GaussianBlur(content, (0, 0), 0.6)
        tex, alpha = screen_texture(content, style, glare)
        hm = plane_homography((tex.shape[1], tex.shape[0]), (center[0] + poses.dx[t] * w,
                              center[1] + poses.dy[t] * h), screen_w_frame * poses.scale[t],
                              poses.angle[t], poses.yaw[t], poses.pitch[t])
        scene = _warp_over(bg * light, tex, alpha, hm, None)
        out.append(capture(scene, cam, rng))
    return out
