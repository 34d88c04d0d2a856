import json
import os
import signal
import subprocess
import sys
import time

import datasets
import pytest
from PIL import Image

from kfgrpo.cache import CacheArgs, build_tad_cache, load_tad_dataset
from kfgrpo.files import CRASH_ENV
from kfgrpo.hub import tad_dataset_card
from kfgrpo.tad import TADConfig

SMALL = TADConfig(max_pixels=56 * 56)


def _table(path):
    """The question table and the frame table (None without one), as Arrow."""
    frames = path / "frames"
    return (
        datasets.load_from_disk(str(path)).data.table,
        datasets.load_from_disk(str(frames)).data.table if frames.exists() else None,
    )


def _same(a, b):
    return a[0].equals(b[0]) and (a[1] is None) == (b[1] is None) and (a[1] is None or a[1].equals(b[1]))


def test_round_trip(frame_cache, synth_train):
    ds = load_tad_dataset(frame_cache)
    lines = [json.loads(x) for x in (synth_train / "manifest.jsonl").read_text().splitlines()]
    assert len(ds) == len(lines)
    # A video's frames are stored once, however many questions it has; the question rows hold no frame.
    frames = datasets.load_from_disk(str(frame_cache / "frames"))
    assert len(frames) == len({x["video"] for x in lines}) < len(lines)
    for col in ("images", "distractor_images"):
        assert col not in load_tad_dataset(frame_cache).column_names
        feature = frames.features[col]
        assert isinstance(feature, datasets.List) and isinstance(feature.feature, datasets.Image)
    row = ds[0]
    assert len(row["images"]) == 4 and all(isinstance(im, Image.Image) for im in row["images"])
    assert len(row["distractor_images"]) == 2
    assert all(im.size[0] % 28 == 0 and im.size[1] % 28 == 0 for im in row["images"])
    assert row["timestamps"] == sorted(row["timestamps"]) and row["frame_indices"] == sorted(row["frame_indices"])
    assert len(row["saliency"]) == len(row["is_apex"]) == 4 and all(0 <= s <= 1 for s in row["saliency"])
    for col in ("id", "problem", "options", "solution", "problem_type", "event_timestamps", "events"):
        assert col in ds.column_names
    info = json.loads(ds.info.description)["kfgrpo_tad"]
    assert info["num_frames"] == 4 and info["method"] == "tad" and info["config"]["max_pixels"] == 56 * 56
    assert json.loads((frame_cache / "tad_config.json").read_text()) == json.loads(ds.info.description)
    assert (frame_cache / "errors.jsonl").read_text() == ""


def test_bad_rows_are_reported_and_skipped(tmp_path, synth_train, segment_video):
    good = (synth_train / "manifest.jsonl").read_text().splitlines()[:2]
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video")
    segment_video(tmp_path / "short.mp4", [(0, 0, 0)], frames_per_segment=1)
    full = segment_video(tmp_path / "full.mp4", [(0, 0, 0), (200, 0, 0)], frames_per_segment=60)
    (tmp_path / "truncated.mp4").write_bytes(full.read_bytes()[: os.path.getsize(full) // 2])
    base = dict(problem="q?", solution="A", problem_type="multiple_choice", options=["A. x"])
    lines = [
        json.loads(good[0]),
        "{not json",
        dict(id="no-video", problem="q", solution="A", problem_type="multiple_choice"),
        dict(base, id="missing", video="nope.mp4"),
        dict(base, id="empty", video="empty.mp4"),
        dict(base, id="text", video="text.mp4"),
        dict(base, id="short", video="short.mp4"),
        dict(base, id="truncated", video="truncated.mp4"),
        dict(base, id="bad-type", video="full.mp4", problem_type="essay"),
        dict(base, id="not-an-option", video="full.mp4", solution="E"),
        json.loads(good[1]),
    ]
    for row in (lines[0], lines[-1]):
        row["video"] = str(synth_train / row["video"])
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "out"
    args = CacheArgs(
        str(manifest), str(out), num_frames=2, shard_size=3, allow_outside_root=True
    )  # good rows elsewhere
    summary = build_tad_cache(args, SMALL, progress=False)
    assert summary["kept"] == 2 and summary["failed"] == 9
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["line"] for e in errors] == list(range(2, 11))
    ids = ["no-video", "missing", "empty", "text", "short", "truncated", "bad-type", "not-an-option"]
    assert [e["id"] for e in errors] == [None, *ids]  # every row that has an id keeps it
    reasons = " | ".join(e["reason"] for e in errors)
    for word in (
        "malformed JSON",
        "missing fields: video",
        "not found",
        "empty file",
        "cannot open",
        "too short",
        "problem_type",
        "answer 'E' is not among the options (A)",
    ):
        assert word in reasons
    assert len(load_tad_dataset(out)) == 2
    with pytest.raises(RuntimeError, match="9 of 11 rows failed"):
        build_tad_cache(
            CacheArgs(str(manifest), str(tmp_path / "strict"), num_frames=2, strict=True, allow_outside_root=True),
            SMALL,
            progress=False,
        )


def test_all_rows_failing_is_an_error(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("{broken\n")
    with pytest.raises(RuntimeError, match="1 of 1 rows failed"):
        build_tad_cache(CacheArgs(str(manifest), str(tmp_path / "o")), SMALL, progress=False)


def _tad_cmd(manifest, out, shard_size):
    cmd = [sys.executable, "-m", "kfgrpo.cli", "tad", "--manifest", manifest, "--output", str(out)]
    return cmd + ["--num_frames", "3", "--shard_size", str(shard_size), "--max_pixels", str(56 * 56)]


def _killed_at(point, manifest, out, shard_size):
    """Runs `kfgrpo tad` until it SIGKILLs itself at the named step (``kfgrpo.files.crash_point``), as a preempted
    SLURM task would die there."""
    env = {**os.environ, CRASH_ENV: point}
    proc = subprocess.run(_tad_cmd(manifest, out, shard_size), env=env, stdout=subprocess.DEVNULL)
    assert proc.returncode == -signal.SIGKILL, f"not killed at {point}"


@pytest.fixture(scope="module")
def clean_run(synth_train, tmp_path_factory):
    """An uninterrupted one-process run at shard size 8 (3 shards), the reference of the crash tests."""
    out = tmp_path_factory.mktemp("clean")
    build_tad_cache(CacheArgs(str(synth_train / "manifest.jsonl"), str(out), num_frames=3, shard_size=8), SMALL, False)
    return out


# Every step of claiming, committing and publishing at which a kill leaves a different state on disk: before and
# after a shard claim is linked, a shard staged but not renamed, a shard committed with its claim still held, and the
# merge planned, part-moved, and published without its completion marker.
CRASH_POINTS = [
    "claim.written:2",
    "claim.linked:2",
    "shard.staged:2",
    "shard.finished:2",
    "merge.planned",
    "merge.moved:2",
    "merge.published",
]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_kill_at_any_step_is_finished_by_a_rerun_into_the_same_dataset(point, tmp_path, synth_train, clean_run):
    manifest = str(synth_train / "manifest.jsonl")
    out = tmp_path / "killed"
    _killed_at(point, manifest, out, 8)
    state = out / ".kfgrpo-cache"
    assert not (state / "complete").exists()
    for claim in state.glob("*.claim"):
        json.loads(claim.read_text())  # whatever is left is whole
    summary = build_tad_cache(CacheArgs(manifest, str(out), num_frames=3, shard_size=8), SMALL, progress=False)
    assert summary["published"] and summary["kept"] == 24
    if point.startswith(("shard.finished", "merge")):
        assert summary["shards_reused"] >= 2  # committed shards are not redone
    assert _same(_table(out), _table(clean_run))
    assert not list(state.glob("*.claim")) and not list(state.glob("*.staging-*"))
    assert not list(state.rglob("*.arrow"))  # every shard file was moved into the dataset


def test_resume_after_kill_9_matches_an_uninterrupted_run(tmp_path, synth_train):
    """A run killed after committing two shards reuses them; a finished run is not redone, and a different config is
    refused instead of mixing shards."""
    manifest = str(synth_train / "manifest.jsonl")
    clean = tmp_path / "clean"
    build_tad_cache(CacheArgs(manifest, str(clean), num_frames=3, shard_size=4), SMALL, progress=False)
    out = tmp_path / "killed"
    _killed_at("shard.finished:2", manifest, out, 4)
    assert (out / ".kfgrpo-cache" / "shard-00001" / "done").exists()
    summary = build_tad_cache(CacheArgs(manifest, str(out), num_frames=3, shard_size=4), SMALL, progress=False)
    assert summary["shards_reused"] == 2 and summary["kept"] == 24
    assert _same(_table(out), _table(clean))
    assert (
        build_tad_cache(CacheArgs(manifest, str(out), num_frames=3, shard_size=4), SMALL, progress=False)[
            "shards_reused"
        ]
        == 6
    )
    with pytest.raises(RuntimeError, match="another manifest or config"):
        build_tad_cache(CacheArgs(manifest, str(out), num_frames=5, shard_size=4), SMALL, progress=False)


def test_a_torn_claim_left_hours_ago_does_not_block_the_run(tmp_path, synth_train, clean_run):
    """An output holding an empty claim file two hours old (a worker killed mid-write by an older writer): the run
    takes it over after ``claim_timeout`` and publishes every row instead of waiting for it forever."""
    manifest = str(synth_train / "manifest.jsonl")
    out = tmp_path / "torn"
    state = out / ".kfgrpo-cache"
    state.mkdir(parents=True)
    claim = state / "shard-00001.claim"
    claim.write_text("")
    two_hours_ago = time.time() - 7200
    os.utime(claim, (two_hours_ago, two_hours_ago))
    args = CacheArgs(manifest, str(out), num_frames=3, shard_size=8, claim_timeout=60, claim_read_grace=0)
    summary = build_tad_cache(args, SMALL, progress=False)
    assert summary["published"] and summary["kept"] == 24
    assert _same(_table(out), _table(clean_run))


def test_parallel_shards_give_the_same_dataset(tmp_path, synth_train, frame_cache):
    out = tmp_path / "par"
    args = CacheArgs(str(synth_train / "manifest.jsonl"), str(out), num_frames=4, shard_size=8, num_proc=2)
    build_tad_cache(args, SMALL, progress=False)
    assert _same(_table(out), _table(frame_cache))


def test_plots_and_dataset_card(tmp_path, synth_train):
    args = CacheArgs(
        str(synth_train / "manifest.jsonl"),
        str(tmp_path / "o"),
        num_frames=4,
        plot_dir=str(tmp_path / "plots"),
        plot_samples=2,
    )
    summary = build_tad_cache(args, SMALL, progress=False)
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert len(pngs) == 2 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    prov = json.loads((tmp_path / "o" / "tad_config.json").read_text())
    card = tad_dataset_card(prov, summary, name="me/chronosynth-tad")
    assert "# me/chronosynth-tad" in card and "kfgrpo" in card and "distractor_images" in card
    assert "Rows kept: 24" in card and '"apex_fraction": 0.75' in card


def test_jpeg_and_png_storage(tmp_path, segment_video):
    """JPEG (the default) is smaller and stays within 34 dB of the selected frame; PNG is exact; both decode."""
    import numpy as np

    from kfgrpo.tad import select_keyframes

    rng = np.random.default_rng(0)
    video = segment_video(
        tmp_path / "v.mp4",
        [tuple(int(c) for c in rng.integers(0, 255, 3)) for _ in range(6)],
        size=(224, 112),
        noise=20.0,
    )
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps(dict(id="q", video=str(video), problem="?", solution="A", problem_type="free_form"))
    )
    cfg = TADConfig(max_pixels=224 * 112)
    selected = select_keyframes(video, 4, config=cfg).frames
    sizes = {}
    for fmt in ("png", "jpeg"):
        out = tmp_path / fmt
        build_tad_cache(CacheArgs(str(manifest), str(out), num_frames=4, image_format=fmt), cfg, progress=False)
        ds = load_tad_dataset(out)
        sizes[fmt] = sum(f.stat().st_size for f in out.rglob("*.arrow"))
        for cached, frame in zip(ds[0]["images"], selected):
            diff = np.asarray(cached.convert("RGB"), dtype=float) - np.asarray(frame, dtype=float)
            mse = float((diff**2).mean())
            if fmt == "png":
                assert mse == 0
            else:
                assert 10 * np.log10(255**2 / max(mse, 1e-12)) >= 34
        assert json.loads(ds.info.description)["kfgrpo_tad"]["image_format"] == fmt
    assert sizes["jpeg"] < sizes["png"]
    with pytest.raises(ValueError, match="image_format"):
        CacheArgs(str(manifest), str(tmp_path / "x"), image_format="webp")


def test_two_workers_on_one_output_equal_one_process(tmp_path, synth_train):
    """Two `kfgrpo tad` processes started together on the same output (two SLURM array tasks) share the shards,
    both exit 0, and the published dataset has exactly the rows and frames of a single-process run."""
    manifest = str(synth_train / "manifest.jsonl")
    clean = tmp_path / "clean"
    build_tad_cache(CacheArgs(manifest, str(clean), num_frames=3, shard_size=2), SMALL, progress=False)
    out = tmp_path / "shared"
    procs = [subprocess.Popen(_tad_cmd(manifest, out, 2), stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert _same(_table(out), _table(clean))
    assert sum("rows kept 24" in o for o in outputs) >= 1  # whoever finished last published
    assert not list((out / ".kfgrpo-cache").glob("*.claim"))  # every claim released
    # The published data files are the shards' own files (moved, not copied).
    assert len(list(out.glob("data-*.arrow"))) == 12 and len(list((out / "frames").glob("data-*.arrow"))) == 12
    assert not list((out / ".kfgrpo-cache").rglob("*.arrow"))


def test_kill_9_of_one_worker_then_rerun_gives_the_same_dataset(tmp_path, synth_train):
    """A worker killed (SIGKILL) while it holds a shard claim leaves a stale claim; a second worker on the same output
    takes it over at once (same host, dead pid), does the rest, and publishes exactly the single-process dataset. Both
    workers did work: the victim finished a shard before it died, the survivor the claimed one and the rest."""
    manifest = str(synth_train / "manifest.jsonl")
    clean = tmp_path / "clean"
    build_tad_cache(CacheArgs(manifest, str(clean), num_frames=3, shard_size=2), SMALL, progress=False)
    out = tmp_path / "shared"
    state = out / ".kfgrpo-cache"
    _killed_at("shard.claimed:2", manifest, out, 2)  # one shard committed, the second claimed
    done = {p.parent.name for p in state.glob("shard-*/done")}
    held = [c for c in state.glob("shard-*.claim") if c.stem not in done]
    assert done == {"shard-00000"} and [c.stem for c in held] == ["shard-00001"]
    claim = held[0]
    victim_pid = json.loads(claim.read_text())["pid"]  # the dead worker's claim, whole
    assert victim_pid != os.getpid()
    summary = build_tad_cache(CacheArgs(manifest, str(out), num_frames=3, shard_size=2), SMALL, progress=False)
    assert summary["published"] and summary["kept"] == 24
    assert summary["shards_reused"] == len(done) == 1  # the survivor redid none of the victim's shards ...
    assert list(state.glob(f"{claim.name}.stale-*"))  # ... and took over the dead worker's claim
    assert (state / claim.stem / "done").exists()
    assert _same(_table(out), _table(clean))


def test_frame_table_rows_equal_self_contained_rows(tmp_path, synth_train, frame_cache):
    """Joined rows carry exactly the frames of the layout that stores them in every row, which is larger; both
    load through `load_tad_dataset`, and `frame_table: false` gives the self-contained rows of earlier versions."""
    out = tmp_path / "inline"
    args = CacheArgs(str(synth_train / "manifest.jsonl"), str(out), num_frames=4, shard_size=8, frame_table=False)
    build_tad_cache(args, SMALL, progress=False)
    assert not (out / "frames").exists()
    inline, joined = load_tad_dataset(out), load_tad_dataset(frame_cache)
    assert "images" in inline.column_names
    raw = inline.cast_column("images", datasets.List(datasets.Image(decode=False)))
    assert len(inline) == len(joined)
    for i in (0, 5, len(inline) - 1):
        assert [im.tobytes() for im in inline[i]["images"]] == [im.tobytes() for im in joined[i]["images"]]
        assert joined[i]["timestamps"] == inline[i]["timestamps"] and joined[i]["id"] == inline[i]["id"]
        assert len(raw[i]["images"][0]["bytes"]) > 0
    size = lambda p: sum(f.stat().st_size for f in p.rglob("*.arrow") if ".kfgrpo-cache" not in f.parts)  # noqa: E731
    assert size(frame_cache) < 0.5 * size(out)  # 4 questions per video


def test_frame_join_survives_select_shuffle_and_pickle(frame_cache):
    import pickle

    ds = load_tad_dataset(frame_cache)
    picked = pickle.loads(pickle.dumps(ds.shuffle(seed=0).select(range(3))))
    rows = picked[:3]
    assert all(len(x) == 4 for x in rows["images"]) and all(len(x) == 2 for x in rows["distractor_images"])
    with pytest.raises(KeyError, match="frames_key"):
        ds.remove_columns(["frames_key"])[0]


def test_frame_join_through_a_dataloader_with_two_workers(frame_cache):
    """The trainers read the joined dataset through a torch DataLoader; with worker processes the join must travel
    (pickled) to each worker and give every row its own frames."""
    import torch

    ds = load_tad_dataset(frame_cache)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, collate_fn=lambda batch: batch)
    seen = [row for batch in loader for row in batch]
    assert len(seen) == len(ds)
    for i in (0, 7, len(ds) - 1):
        assert seen[i]["id"] == ds[i]["id"]
        assert [im.tobytes() for im in seen[i]["images"]] == [im.tobytes() for im in ds[i]["images"]]
        assert len(seen[i]["distractor_images"]) == len(ds[i]["distractor_images"]) > 0


def test_videos_outside_the_root_are_refused_and_repeated_ids_made_unique(tmp_path, synth_train, capsys):
    """A manifest row that names a file outside the manifest's folder (`..`, an absolute path elsewhere) is reported
    and skipped unless --allow_outside_root; a repeated id is renamed X#2 with one warning line."""
    import shutil

    root = tmp_path / "data"
    (root / "videos").mkdir(parents=True)
    rows = [json.loads(x) for x in (synth_train / "manifest.jsonl").read_text().splitlines()[:3]]
    shutil.copy(synth_train / rows[0]["video"], root / "videos" / "a.mp4")
    outside = tmp_path / "secret.mp4"
    shutil.copy(synth_train / rows[0]["video"], outside)
    lines = [
        dict(rows[0], video="videos/a.mp4"),
        dict(rows[1], id=rows[0]["id"], video="videos/a.mp4"),  # the same id again: a different question
        dict(rows[2], id="escape", video="../secret.mp4"),
        dict(rows[2], id="absolute", video=str(outside)),
    ]
    manifest = root / "m.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out"
    summary = build_tad_cache(CacheArgs(str(manifest), str(out), num_frames=2), SMALL, progress=False)
    assert summary["kept"] == 2 and summary["failed"] == 2
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["id"] for e in errors] == ["escape", "absolute"]
    assert all("outside the video root" in e["reason"] for e in errors)
    assert sorted(load_tad_dataset(out)["id"]) == sorted([rows[0]["id"], rows[0]["id"] + "#2"])
    err = capsys.readouterr().err
    assert err.count("repeated id") == 1 and rows[0]["id"] + "#2" in err
    allowed = build_tad_cache(
        CacheArgs(str(manifest), str(tmp_path / "allowed"), num_frames=2, allow_outside_root=True), SMALL,
        progress=False,
    )  # fmt: skip
    assert allowed["kept"] == 4


def test_workers_finishing_together_publish_and_push_once(tmp_path, synth_train, monkeypatch, capsys):
    """Two array tasks that finish their last shards at the same moment both find every shard done: one takes the
    merge claim and publishes; the other waits for it, says so, and neither writes the summary nor pushes."""
    from kfgrpo import cli, hub
    from kfgrpo.cache import build, publish
    from kfgrpo.cache.claims import release, try_claim

    manifest = str(synth_train / "manifest.jsonl")
    out = tmp_path / "shared"
    args = CacheArgs(manifest, str(out), num_frames=3, shard_size=4)
    with monkeypatch.context() as m:  # this worker's shards are done, nobody has published yet
        m.setattr(build, "_publish", lambda *a: None)
        assert build_tad_cache(args, SMALL, progress=False)["published"] is False
    lock = out / ".kfgrpo-cache" / "merge.claim"
    assert try_claim(lock, stale_after=3600)  # the other worker (alive) holds the merge claim
    shard_dirs = sorted(p for p in (out / ".kfgrpo-cache").glob("shard-*") if p.is_dir())

    def other_worker_publishes(seconds):  # the waiter's poll: the publisher finishes meanwhile
        if lock.exists():
            publish._merge_shards(args, SMALL, out, shard_dirs, 24)
            release(lock)

    pushes = []
    monkeypatch.setattr(publish.time, "sleep", other_worker_publishes)
    monkeypatch.setattr(hub, "check_push_access", lambda *a, **k: None)
    monkeypatch.setattr(hub, "push_tad_dataset", lambda *a, **k: pushes.append(a))
    argv = ["--manifest", manifest, "--output", str(out), "--num_frames", "3", "--shard_size", "4",
            "--max_pixels", str(56 * 56), "--push_to_hub", "me/tad"]  # fmt: skip
    assert cli.main(["tad", *argv]) == 0
    said = capsys.readouterr().out
    assert "another worker published" in said and "rows kept" not in said
    assert pushes == [] and not (out / "summary.json").exists()
    assert len(load_tad_dataset(out)) == 24
