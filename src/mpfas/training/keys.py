"""The params keys a training stage declares (``stage_main``), shared by ``stages/train.py`` and
``stages/train_oulu.py``: both train through ``loop.train`` and so read the same keys, besides
their protocol's definition (``manifests.protocols.<P>`` or ``manifests.oulu_protocols``)."""

READS = (
    "data.source", "model",
    # recorded in the checkpoints (mpfas.checkpoint.Preprocess)
    "align.crop_size", "align.padding", "align.detect_max_side", "align.select", "align.min_face_size",
    "extract.frames_per_video", "extract.image_ext", "extract.decode",
    "evaluate.faces_per_video", "evaluate.batch_size", "evaluate.precision",  # source-val scoring
    "train.algorithm", "train.first_order", "train.iterations", "train.inner_loops", "train.meta_lr",
    "train.momentum", "train.batch_live", "train.batch_spoof", "train.faces_per_video", "train.seed",
    "train.eval_every", "train.select", "train.device", "train.precision", "train.augment",
    "train.channels_last",  # the memory format; the rounding follows it
    "tracking.system_metrics",  # on: training reruns to sample them
)
"""Keys that change what training writes (a training stage's DVC params)."""

UNTRACKED = ("tracking.experiment", "train.resume", "train.checkpoint_every", "train.workers",
             "manifests.val_fraction", "manifests.target_set")
"""Read, but unable to change best.pt, last.pt or the metrics: MLflow's experiment, resume and
checkpoint cadence, loader threads, and knobs that only enter the run's paper-preset tag."""
