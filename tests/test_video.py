import pytest

from kfgrpo.video import VideoError, fit_to_patches, probe, uniform_indices


def test_probe(synth_train):
    info = probe(synth_train / "videos" / "cs0-00000.mp4")
    assert info.fps == 8 and (info.width, info.height) == (160, 120)
    assert info.num_frames == round(info.duration * info.fps)


def test_uniform_indices():
    assert uniform_indices(100, 4) == [0, 33, 66, 99]
    assert uniform_indices(3, 8) == [0, 1, 2]
    assert uniform_indices(0, 8) == []


def test_fit_to_patches_matches_transformers_smart_resize():
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    for h, w in [(120, 160), (360, 640), (272, 640), (720, 1280), (28, 28), (10, 1000), (1080, 1920), (33, 47)]:
        for factor, lo, hi in [
            (28, 28 * 28, 128 * 28 * 28),
            (28, 56 * 56, 56 * 56),
            (32, 32 * 32, 256 * 32 * 32),
            (28, 256 * 28 * 28, 1024 * 28 * 28),
        ]:
            assert fit_to_patches(h, w, factor, lo, hi) == smart_resize(h, w, factor, lo, hi), (h, w, factor)


def test_fit_to_patches_is_a_fixed_point():
    h, w = fit_to_patches(120, 160, 28, 28 * 28, 128 * 28 * 28)
    assert h % 28 == 0 and w % 28 == 0 and h * w <= 128 * 28 * 28
    assert fit_to_patches(h, w, 28, 28 * 28, 128 * 28 * 28) == (h, w)


@pytest.mark.parametrize("kind", ["missing", "empty", "not_a_video"])
def test_bad_videos_raise_video_error(tmp_path, kind):
    path = tmp_path / "v.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "not_a_video":
        path.write_text("this is not a video\n" * 100)
    with pytest.raises(VideoError):
        probe(path)
