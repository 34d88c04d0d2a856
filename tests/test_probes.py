import random

import pytest

from kfgrpo.probes import perturb

FRAMES = ["f0", "f1", "f2", "f3", "f4", "f5"]
TS = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
SAL = [0.1, 0.9, 0.2, 0.8, 0.3, 0.7]
DIS = ["d0", "d1", "d2"]
DIS_TS = [0.5, 2.5, 4.5]
DIS_SAL = [0.0, 0.01, 0.02]


def test_shuffle_changes_order_keeps_frames():
    for seed in range(20):
        out, sal = perturb("shuffle", FRAMES, random.Random(seed), saliency=SAL)
        assert sorted(out) == FRAMES and out != FRAMES
        assert [SAL[FRAMES.index(f)] for f in out] == sal


def test_reverse():
    assert perturb("reverse", FRAMES, random.Random(0))[0] == FRAMES[::-1]


def test_swap_salient_replaces_the_most_salient_frames_in_time_order():
    out, sal = perturb(
        "swap_salient",
        FRAMES,
        random.Random(0),
        saliency=SAL,
        timestamps=TS,
        distractors=DIS,
        distractor_timestamps=DIS_TS,
        distractor_saliency=DIS_SAL,
        fraction=0.5,
    )
    # top-3 salient: f1, f3, f5 → replaced by d0, d1, d2; everything re-sorted by time
    assert out == ["f0", "d0", "f2", "d1", "f4", "d2"]
    assert sal == [0.1, 0.0, 0.2, 0.01, 0.3, 0.02]
    assert sum(sal) / len(sal) < sum(SAL) / len(SAL)


def test_drop_salient_and_drop_random():
    out, _ = perturb("drop_salient", FRAMES, random.Random(0), saliency=SAL, fraction=0.5)
    assert out == ["f0", "f2", "f4"]
    out, _ = perturb("drop_random", FRAMES, random.Random(0), fraction=0.5)
    assert len(out) == 3 and out == [f for f in FRAMES if f in out]


def test_fallbacks_without_tad_columns():
    out, sal = perturb("swap_salient", FRAMES, random.Random(0))  # no saliency, no distractors → random drop
    assert len(out) == 3 and sal is None and out == [f for f in FRAMES if f in out]
    out, _ = perturb("swap_salient", FRAMES, random.Random(0), saliency=SAL)  # no distractors → drop salient
    assert out == ["f0", "f2", "f4"]


@pytest.mark.parametrize("kind", ["swap_salient", "drop_salient", "drop_random"])
def test_at_least_one_frame_stays(kind):
    out, _ = perturb(kind, ["only", "two"], random.Random(0), fraction=1.0)
    assert len(out) >= 1
    assert perturb(kind, ["only"], random.Random(0), fraction=1.0)[0] == ["only"]


def test_unknown_probe():
    with pytest.raises(ValueError):
        perturb("blur", FRAMES, random.Random(0))
