import itertools
import json

import numpy as np
import pytest
import torch
from PIL import Image

from kfgrpo.tad import TADConfig, select_keyframes
from kfgrpo.tad.learned import FEATURES, LearnedSelector, candidate_features
from kfgrpo.tad.select import CandidateCurve


def _selector(**kw):
    torch.manual_seed(0)
    sel = LearnedSelector(**kw)
    with torch.no_grad():
        sel.weights.copy_(torch.randn(len(FEATURES)))
    return sel


def test_the_gradient_reaches_every_parameter():
    sel = _selector()
    phi = torch.randn(24, len(FEATURES))
    order = sel.draw(phi, 6, torch.Generator().manual_seed(1))
    sel.log_prob(phi, order).backward()
    assert torch.all(sel.weights.grad != 0), sel.weights.grad
    assert sel.repulsion_raw.grad != 0 and sel.width_raw.grad != 0


def test_log_prob_is_an_exact_distribution_and_sampling_follows_it():
    sel = _selector(repulsion=1.5, width=0.4, min_gap=1)
    phi = torch.randn(5, len(FEATURES))
    orders = list(itertools.permutations(range(5), 2))
    probs = {o: float(sel.log_prob(phi, list(o)).detach().exp()) for o in orders}
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    gen = torch.Generator().manual_seed(0)
    counts = {o: 0 for o in orders}
    for _ in range(4000):
        counts[tuple(sel.draw(phi, 2, gen))] += 1
    for o in orders:  # sampling (Gumbel-max per step) draws from the same distribution
        assert counts[o] / 4000 == pytest.approx(probs[o], abs=0.03)


def test_repulsion_spreads_picks_and_greedy_is_the_mode_of_each_step():
    phi = torch.zeros(40, len(FEATURES))
    phi[10:20, FEATURES.index("distinct")] = 1.0  # one long shot scores high everywhere
    flat = LearnedSelector({"distinct": 5.0}, repulsion=0.0)
    spread = LearnedSelector({"distinct": 5.0}, repulsion=20.0, width=0.5)
    assert all(10 <= p < 20 for p in flat.select(phi, 4))  # a plain top-K stays in the shot
    picks = spread.select(phi, 4)
    assert list(picks) == sorted(picks) and len(set(picks)) == 4
    assert sum(10 <= p < 20 for p in picks) < 4  # the repulsion sends later picks elsewhere
    gapped = LearnedSelector({"distinct": 5.0}, repulsion=0.0, min_gap=3).select(phi, 4)
    assert np.diff(gapped).min() >= 3


def _toy_curve(n: int, cuts: list[int], clue: int) -> CandidateCurve:
    """Two strong cuts (the apexes TAD ranks first) and one candidate of unusual content without any change."""
    v = np.zeros(n)
    v[cuts] = 1.0
    norm = v * 20.0
    distinct = np.zeros(n)
    distinct[clue] = 6.0
    apexes = np.array(sorted(cuts))
    alpha = np.zeros(n)
    alpha[apexes] = 1.0
    prio = np.log1p(norm / 3.0) * 3.0 + alpha
    sal = (prio - prio.min()) / (prio.max() - prio.min() + 1e-6)
    return CandidateCurve(
        frame_indices=np.arange(n) * 4,
        timestamps=np.arange(n) * 0.5,
        variation=v,
        smoothed=v,
        normalized=norm,
        apex_score=alpha,
        priority=prio,
        saliency=sal,
        apexes=apexes,
        peaks=apexes,
        distinctiveness=distinct,
    )


CLUE = (0, 200, 0)


class _ClueReader:
    """A stand-in model: answers right exactly when one of its frames is the clue frame (pure green)."""

    def generate(self, conversations):
        from kfgrpo.eval.run import conversation_images

        out = []
        for conv in conversations:
            seen = any(np.asarray(im)[0, 0].tolist() == list(CLUE) for im in conversation_images(conv))
            out.append("<think>.</think><answer>A</answer>" if seen else "<think>.</think><answer>B</answer>")
        return out


def _toy_task(tmp_path, num_videos=6, n=20, k=2):
    rng = np.random.default_rng(0)
    cfg = TADConfig()
    cands, lines = {}, []
    from kfgrpo.tad.learned.training import Candidates

    for i in range(num_videos):
        cuts = sorted(rng.choice(np.arange(2, n - 2), 2, replace=False).tolist())
        clue = int(rng.choice([t for t in range(1, n - 1) if all(abs(t - c) > 2 for c in cuts)]))
        frames = [Image.new("RGB", (28, 28), CLUE if t == clue else (90, 90, 90)) for t in range(n)]
        video = tmp_path / f"v{i}.mp4"
        video.write_bytes(b"")  # never decoded: the candidates come from the curve
        cands[str(video)] = (Candidates.from_curve(_toy_curve(n, cuts, clue), frames, k, cfg), clue)
        lines.append(
            dict(id=f"q{i}", video=video.name, problem="Which?", options=["A. x", "B. y"], solution="A")
            | dict(problem_type="multiple_choice")
        )
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return manifest, cands, cfg


def _args(tmp_path, manifest, out, **kw):
    from kfgrpo.tad.learned.training import TADLearnArgs

    base = dict(
        manifest=str(manifest),
        model="unused",
        output_dir=str(out),
        num_frames=[2],
        questions_per_step=6,
        samples_per_question=4,
        learning_rate=0.3,
        max_steps=40,
        save_steps=5,
    )
    return TADLearnArgs(**{**base, **kw})


def test_learns_the_one_frame_that_answers_where_the_defaults_miss_it(tmp_path):
    from kfgrpo.tad.learned.training import learn

    manifest, cands, cfg = _toy_task(tmp_path)
    for cand, clue in cands.values():
        assert clue not in cand.distill  # TAD's hand-set stage 3 spends both slots on the cuts
    args = _args(tmp_path, manifest, tmp_path / "out")
    summary = learn(args, cfg, backend=_ClueReader(), candidates=lambda v, k: cands[v][0], progress=False)
    assert summary["finished"]
    learned = LearnedSelector.load(summary["selector"])
    for cand, clue in cands.values():
        assert clue in learned.select(cand.phi, 2)
    assert learned.state()["weights"]["distinct"] > 1.0
    history = [json.loads(x) for x in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert np.mean([h["greedy_reward"] for h in history[-5:]]) == 1.0
    assert all(h["distill_reward"] == 0.0 for h in history)
    assert (tmp_path / "out" / "learning_curve.png").stat().st_size > 10_000


def test_resume_gives_the_parameters_of_an_uninterrupted_run(tmp_path):
    from kfgrpo.tad.learned.training import learn

    manifest, cands, cfg = _toy_task(tmp_path)
    provider = lambda v, k: cands[v][0]  # noqa: E731
    learn(_args(tmp_path, manifest, tmp_path / "a", max_steps=12), cfg, backend=_ClueReader(), candidates=provider)
    resumed = _args(tmp_path, manifest, tmp_path / "b", max_steps=12)
    first = learn(resumed, cfg, backend=_ClueReader(), candidates=provider, stop_after=7, progress=False)
    assert not first["finished"] and not (tmp_path / "b" / "tad.yaml").exists()
    learn(resumed, cfg, backend=_ClueReader(), candidates=provider, progress=False)  # from the step-5 checkpoint
    a = json.loads((tmp_path / "a" / "selector.json").read_text())
    b = json.loads((tmp_path / "b" / "selector.json").read_text())
    assert a == b
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))  # steps 6-7, run after the checkpoint, were redone once, not logged twice


def test_tad_yaml_round_trip_through_kfgrpo_tad(tmp_path, segment_video):
    from kfgrpo.cache import CacheArgs
    from kfgrpo.cli import _parse
    from kfgrpo.tad.learned.training import write_tad_yaml

    colours = [(20, 20, 20), (200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]
    segments_video = segment_video(tmp_path / "seg.mp4", colours)

    sel = _selector(repulsion=1.0, width=0.7)
    out = tmp_path / "learned"
    out.mkdir()
    sel.save(out / "selector.json")
    args = _args(tmp_path, tmp_path / "m.jsonl", out)
    base = TADConfig(max_pixels=3136, apex_fraction=0.5)
    path = write_tad_yaml(args, base)
    argv = ["--config", str(path), "--manifest", "m.jsonl", "--output", str(tmp_path / "cache")]
    _, cfg = _parse((CacheArgs, TADConfig), argv, "kfgrpo tad")
    assert cfg.max_pixels == 3136 and cfg.apex_fraction == 0.5 and cfg.selector_weights == str(out / "selector.json")
    assert LearnedSelector.load(cfg.selector_weights).state() == sel.state()
    chosen = select_keyframes(segments_video, 3, config=cfg)
    expected = sel.select(candidate_features(chosen.curve, cfg.variation_log_scale), 3)
    assert list(chosen.positions) == list(expected)
    assert cfg.selector()["kind"] == "learned" and len(cfg.selector()["sha256"]) == 64
    assert TADConfig().selector() == {"kind": "distill"}


def test_weights_of_another_format_are_refused(tmp_path):
    state = _selector().state()
    state["features"] = state["features"][:-1]
    (tmp_path / "s.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match="another format"):
        LearnedSelector.load(tmp_path / "s.json")
    from kfgrpo.tad.learned import load_selector

    with pytest.raises(FileNotFoundError, match="no such file"):
        load_selector(tmp_path / "missing.json")


class _AlwaysA:
    def generate(self, conversations):
        return ["<think>.</think><answer>A</answer>" for _ in conversations]


def test_bad_videos_and_rows_are_reported_and_skipped(tmp_path, segment_video, capsys):
    from kfgrpo.tad.learned.training import learn

    colours = [(20, 20, 20), (200, 30, 30), (30, 200, 30), (30, 30, 200)]
    segment_video(tmp_path / "good.mp4", colours)
    (tmp_path / "text.mp4").write_text("not a video")
    base = dict(problem="Which?", options=["A. x", "B. y"], solution="A", problem_type="multiple_choice")
    lines = [
        json.dumps(dict(base, id="good", video="good.mp4")),
        "{not json",
        json.dumps(dict(base, id="bad", video="text.mp4")),
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    args = _args(tmp_path, tmp_path / "m.jsonl", tmp_path / "out", max_steps=2, questions_per_step=2, num_frames=[2])
    summary = learn(args, TADConfig(max_pixels=3136), backend=_AlwaysA(), progress=False)
    assert summary["finished"] and summary["skipped_videos"] == 1
    errors = [json.loads(x) for x in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert [e["video"] for e in errors] == [str(tmp_path / "text.mp4")] and "cannot open" in errors[0]["reason"]
    printed = capsys.readouterr().out
    assert "skipped manifest line 2" in printed and "text.mp4" in printed
    history = [json.loads(x) for x in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert [h["questions"] for h in history] == [1, 1]  # the good question, every step


def test_kfgrpo_tad_records_the_learned_selector(tmp_path, segment_video):
    from kfgrpo.cache import CacheArgs, build_tad_cache

    colours = [(20, 20, 20), (200, 30, 30), (30, 200, 30), (30, 30, 200)]
    segment_video(tmp_path / "v.mp4", colours)
    row = dict(id="q", video="v.mp4", problem="Which?", options=["A. x"], solution="A", problem_type="multiple_choice")
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n")
    _selector().save(tmp_path / "selector.json")
    cfg = TADConfig(max_pixels=3136, selector_weights=str(tmp_path / "selector.json"))
    build_tad_cache(CacheArgs(str(tmp_path / "m.jsonl"), str(tmp_path / "cache"), num_frames=2), cfg, progress=False)
    info = json.loads((tmp_path / "cache" / "tad_config.json").read_text())["kfgrpo_tad"]
    assert info["selector"]["kind"] == "learned" and info["selector"]["sha256"] == cfg.selector()["sha256"]
    assert info["config"]["selector_weights"] == str(tmp_path / "selector.json")
    from kfgrpo.hub import tad_dataset_card

    card = tad_dataset_card({"kfgrpo_tad": info}, {"kept": 1, "failed": 0})
    assert "learned selector" in card and info["selector"]["sha256"][:16] in card
    assert "fills the remaining slots" not in card


def test_the_cache_time_selection_is_the_greedy_draw():
    for seed in range(5):
        sel = _selector(repulsion=0.5 + seed, width=0.2 + 0.2 * seed, min_gap=1 + seed % 3)
        phi = torch.randn(50, len(FEATURES), generator=torch.Generator().manual_seed(seed))
        for k in (1, 4, 8, 16):
            assert list(sel.select(phi, k)) == sorted(sel.draw(phi, k, greedy=True))


def test_answers_on_the_video_path(tmp_path):
    """``--visual_input video``: the frozen model is asked with each frame set as one video at its times."""
    from kfgrpo.data_utils import PromptArguments
    from kfgrpo.eval.protocols import get_protocol
    from kfgrpo.tad.learned.training import answer_all

    manifest, cands, _ = _toy_task(tmp_path, num_videos=2)
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    seen = []

    class Videos:
        def generate(self, conversations):
            for c in conversations:
                parts = [p for m in c if isinstance(m["content"], list) for p in m["content"]]
                seen.append(
                    [(p["type"], len(p.get("video", [])), p.get("timestamps")) for p in parts if p["type"] != "text"]
                )
            return ["<answer>A</answer>"] * len(conversations)

    cand = next(iter(cands.values()))[0]
    requests = [(rows[0], cand, [0, 1]), (rows[1], cand, [1, 0])]
    scores = answer_all(Videos(), requests, PromptArguments(), get_protocol("reasoning", "canonical"), "video")
    assert len(scores) == 2 and all(v == 1.0 for v in scores.values())
    times = [float(cand.timestamps[0]), float(cand.timestamps[1])]
    assert seen == [[("video", 2, times)], [("video", 2, times[::-1])]]
