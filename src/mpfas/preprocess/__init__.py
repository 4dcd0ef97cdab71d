"""Preprocessing: sampled frames per video (``extract``) and MTCNN-aligned faces (``align``).

Heavy pieces (MTCNN, torch) load only when :mod:`.detect` or :mod:`.align` is imported.
"""

from mpfas.preprocess.extract import ExtractError, ExtractSummary, run_extract
from mpfas.preprocess.frames import SampledFrames, VideoReadError, read_sampled_frames
from mpfas.preprocess.jobs import Issue
from mpfas.preprocess.warp import MEAN_FACE_5PT, alignment_matrix, similarity_transform, template_points, warp_face

__all__ = [
    "MEAN_FACE_5PT", "ExtractError", "ExtractSummary", "Issue", "SampledFrames", "VideoReadError",
    "alignment_matrix", "read_sampled_frames", "run_extract", "similarity_transform",
    "template_points", "warp_face",
]
