"""The one sampler: frames from a video (extract, predict) and faces per video (train, evaluate)."""

import numpy as np
import pytest

from mpfas.core.sampling import even_indices, pick_evenly


def test_even_indices_spread_evenly_with_ends():
    assert even_indices(24, 4) == [0, 8, 15, 23]
    assert even_indices(3, 4) == [0, 1, 2]
    assert even_indices(1, 4) == [0]
    assert even_indices(0, 4) == []
    assert even_indices(5, 0) == []
    idx = even_indices(375, 8)
    assert idx[0] == 0 and idx[-1] == 374 and len(idx) == 8
    gaps = np.diff(idx)
    assert gaps.max() - gaps.min() <= 1


def test_one_item_is_the_middle_one_for_frames_and_faces_alike():
    assert even_indices(10, 1) == [4]
    assert even_indices(9, 1) == [4]
    faces = [f"f{i}" for i in range(7)]
    assert pick_evenly(faces, 1) == ["f3"]
    assert pick_evenly(faces[:1], 1) == ["f0"]


def test_two_and_three_match_the_official_linspace_reader():
    """k = 2, 3 (the demo, the paper) pick what ``linspace(0, n-1, k).round()`` picks, for every n."""
    for n in range(1, 2000):
        for k in (2, 3):
            expected = np.linspace(0, n - 1, min(k, n)).round().astype(int).tolist()
            assert even_indices(n, k) == expected, (n, k)


def test_pick_evenly_first_and_last():
    faces = [f"f{i}" for i in range(7)]
    assert pick_evenly(faces, 2) == ["f0", "f6"]
    assert pick_evenly(faces, 3) == ["f0", "f3", "f6"]
    assert pick_evenly(faces[:1], 2) == ["f0"]
    assert pick_evenly(faces, 0) == faces
    with pytest.raises(ValueError, match=">= 0"):
        pick_evenly(faces, -1)


def test_against_the_official_readers_truncating_linspace():
    """The official reader's ``linspace(0, n-1, k, dtype=int)``: the same pair for the paper's 2 faces
    per video; for 3, its middle index is one lower where ours rounds (n - 1) / 2 up."""

    for n in range(1, 200):
        assert even_indices(n, 2) == [int(i) for i in np.unique(np.linspace(0, n - 1, 2, dtype=int))]
    assert [int(i) for i in np.linspace(0, 3, 3, dtype=int)] == [0, 1, 3] and even_indices(4, 3) == [0, 2, 3]
