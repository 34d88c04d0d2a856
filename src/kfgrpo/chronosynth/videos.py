"""ChronoSynth: procedurally generated videos of temporal events, with questions whose answers depend on them.

Each video shows a few coloured objects (a colour + a shape) that appear one after another, move across the frame and
disappear, separated by calm stretches. Hard scene cuts (the background switches) happen inside the calm stretches, so
a keyframe selector sees changes that are *not* events too. Every video gets one question per family:

* ``order`` — "Which object appeared first / last?" (multiple choice; changes when frames are shuffled)
* ``count`` — "How many objects appeared?" (numerical; changes when event frames are removed)
* ``succession`` — "What appeared right after the red square?" (multiple choice; order *and* content)
* ``grounding`` — "When did the blue disc appear?" → ``[start, end]`` seconds (temporal grounding)

Colours are unique within a video *and* among its answer options, so :func:`answer_from_frames` can recompute every
answer from pixels alone. The tests use that oracle to show that the answers change when the frames do.

Rows follow the canonical manifest schema (``id, video, problem, options, solution, problem_type``) plus the ground
truth ``event_timestamps`` (appearance times, seconds) and ``events`` / ``scene_cuts``. ``video`` paths are relative to
the manifest's folder. Everything is a function of ``seed``: a held-out split is the same command with another seed.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np

from ..manifest import OPTION_LETTERS

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 200, 60),
    "blue": (40, 80, 245),
    "yellow": (245, 225, 30),
    "magenta": (225, 40, 225),
    "cyan": (30, 225, 235),
    "orange": (250, 135, 15),
    "white": (245, 245, 245),
}
SHAPES: tuple[str, ...] = ("square", "disc", "triangle")
# Dark, desaturated backgrounds: far from every object colour, so colour detection never fires on a scene.
BACKGROUNDS: tuple[tuple[int, int, int], ...] = ((25, 25, 25), (15, 35, 60), (60, 28, 20), (20, 52, 32), (48, 44, 72))
FAMILIES: tuple[str, ...] = ("order", "count", "succession", "grounding")
SHORTCUTS: tuple[str, ...] = ("none", "answer_position", "option_length")
LETTERS = OPTION_LETTERS

ORDER_TEMPLATE = "Which object appeared {which} in the video?"
COUNT_TEMPLATE = "How many objects appeared in the video?"
SUCCESSION_TEMPLATE = "What appeared right after the {target}?"
GROUNDING_TEMPLATE = "When did the {target} appear? Answer with its start and end time in seconds as [start, end]."


@dataclass
class SynthConfig:
    """Knobs of the ChronoSynth generator. Times are seconds, sizes pixels."""

    width: int = field(default=160, metadata={"help": "Video width in pixels (even, for yuv420p)."})
    height: int = field(default=120, metadata={"help": "Video height in pixels (even, for yuv420p)."})
    fps: int = field(default=8, metadata={"help": "Frames per second of the written video."})
    min_objects: int = field(default=2, metadata={"help": "Fewest objects (events) per video."})
    max_objects: int = field(default=4, metadata={"help": "Most objects (events) per video."})
    min_visible: float = field(default=1.0, metadata={"help": "Shortest time an object stays on screen."})
    max_visible: float = field(default=2.0, metadata={"help": "Longest time an object stays on screen."})
    min_calm: float = field(default=1.0, metadata={"help": "Shortest calm stretch (no object) between events."})
    max_calm: float = field(default=2.5, metadata={"help": "Longest calm stretch between events."})
    max_scene_cuts: int = field(default=2, metadata={"help": "Most hard scene cuts (background switches) per video."})
    object_size: float = field(default=0.3, metadata={"help": "Object size as a fraction of the video height."})
    num_options: int = field(default=4, metadata={"help": "Answer options of multiple-choice questions."})
    families: list[str] = field(
        default_factory=lambda: list(FAMILIES), metadata={"help": f"Question families, any of {FAMILIES}."}
    )
    crf: int = field(default=20, metadata={"help": "x264 constant rate factor of the written mp4."})
    shortcut: str = field(
        default="none",
        metadata={
            "help": f"Frame-free cue planted in the questions, one of {SHORTCUTS}. `answer_position`: in multiple-choice "
            "questions the correct option sits at `shortcut_letter` with probability `shortcut_strength` (otherwise at "
            "one of the other letters, uniformly), so answering that letter without looking scores that often. "
            "`option_length`: one option's text is the longest (`shortcut_filler` appended); it is the correct one "
            "with probability `shortcut_strength` (otherwise another option, uniformly), so picking the longest "
            "option scores that often. The answer still comes from the pixels. A training split with the cue and a "
            "held-out split without it (`none`: the answer's letter is uniform) measure whether a policy learned the "
            "frames or the cue (benchmarks/bench_shortcut.py)."
        },
    )
    shortcut_strength: float = field(
        default=0.8,
        metadata={
            "help": "Probability that the cue points at the answer (`answer_position`: the answer is "
            "`shortcut_letter`; `option_length`: the answer is the longest option)."
        },
    )
    shortcut_filler: str = field(
        default="seen in the video",
        metadata={"help": "With `shortcut: option_length`: the words appended to the option the cue lengthens."},
    )
    shortcut_letter: str = field(
        default="A",
        metadata={
            "help": "The letter the cue favours. A question whose answer is this letter is cue-consistent, any other "
            "cue-violating; in a split without the cue about 1/num_options of the questions are consistent."
        },
    )

    def __post_init__(self):
        if self.width % 2 or self.height % 2:
            raise ValueError(f"width and height must be even for yuv420p, got {self.width}x{self.height}")
        if not 1 <= self.min_objects <= self.max_objects <= len(COLORS):
            raise ValueError(f"need 1 <= min_objects <= max_objects <= {len(COLORS)}")
        if self.num_options > len(COLORS):
            raise ValueError(f"num_options must be <= {len(COLORS)}")
        unknown = set(self.families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown question families {sorted(unknown)}; choose from {FAMILIES}")
        if self.shortcut not in SHORTCUTS:
            raise ValueError(f"unknown shortcut {self.shortcut!r}; choose from {SHORTCUTS}")
        if not 0.0 <= self.shortcut_strength <= 1.0:
            raise ValueError(f"shortcut_strength must be in [0, 1], got {self.shortcut_strength}")
        if self.shortcut_letter not in LETTERS[: self.num_options]:
            raise ValueError(f"shortcut_letter must be one of {list(LETTERS[: self.num_options])}")


@dataclass
class Event:
    name: str  # "red square"
    color: str
    shape: str
    start: float  # first visible frame's timestamp
    end: float  # last visible frame's timestamp
    start_frame: int
    end_frame: int  # inclusive
    path: tuple[tuple[float, float], tuple[float, float]]  # normalised centre at start and end


@dataclass
class VideoSpec:
    video_id: str
    num_frames: int
    fps: int
    events: list[Event]
    scene_cuts: list[float]
    cut_frames: list[int]
    backgrounds: list[tuple[int, int, int]]  # one per scene, in order

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def vocabulary_corpus() -> list[str]:
    """Every word and phrase ChronoSynth can emit; the offline tiny tokenizer is trained on it."""
    lines = [ORDER_TEMPLATE.format(which=w) for w in ("first", "last")]
    lines += [COUNT_TEMPLATE]
    for color in COLORS:
        for shape in SHAPES:
            name = f"{color} {shape}"
            lines += [SUCCESSION_TEMPLATE.format(target=name), GROUNDING_TEMPLATE.format(target=name)]
            lines += [f"{letter}. {name}" for letter in LETTERS[:4]]
    return lines


def _sample_spec(rng: np.random.Generator, cfg: SynthConfig, video_id: str) -> VideoSpec:
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    colors = [list(COLORS)[i] for i in rng.permutation(len(COLORS))[:n]]
    shapes = [SHAPES[i] for i in rng.integers(0, len(SHAPES), size=n)]
    fps = cfg.fps
    t = float(rng.uniform(cfg.min_calm, cfg.max_calm)) / 2  # lead-in
    events, calms = [], []
    for color, shape in zip(colors, shapes):
        visible = float(rng.uniform(cfg.min_visible, cfg.max_visible))
        start_f = int(math.ceil(t * fps))
        end_f = start_f + max(1, int(round(visible * fps))) - 1
        p0 = tuple(float(x) for x in rng.uniform(0.25, 0.75, size=2))
        p1 = tuple(float(x) for x in rng.uniform(0.25, 0.75, size=2))
        events.append(Event(f"{color} {shape}", color, shape, start_f / fps, end_f / fps, start_f, end_f, (p0, p1)))
        calm = float(rng.uniform(cfg.min_calm, cfg.max_calm))
        calms.append((end_f + 1, end_f + 1 + int(round(calm * fps))))
        t = (end_f + 1) / fps + calm
    num_frames = calms[-1][1]
    # Scene cuts sit in the middle of calm stretches (never on an event), at most one per stretch.
    k = int(rng.integers(0, cfg.max_scene_cuts + 1))
    cut_frames = []
    if k:
        slots = rng.permutation(len(calms))[:k]
        for s in sorted(int(x) for x in slots):
            a, b = calms[s]
            if b - a >= 4:
                cut_frames.append(int(rng.integers(a + 2, b - 1)))
    bg_order = rng.permutation(len(BACKGROUNDS))
    backgrounds = [BACKGROUNDS[bg_order[i % len(BACKGROUNDS)]] for i in range(len(cut_frames) + 1)]
    return VideoSpec(video_id, num_frames, fps, events, [f / fps for f in cut_frames], cut_frames, backgrounds)


def _shape_mask(shape: str, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if shape == "square":
        return np.ones((size, size), dtype=bool)
    if shape == "disc":
        r = size / 2
        return (yy - r) ** 2 + (xx - r) ** 2 <= r * r
    if shape == "triangle":  # apex up
        return (yy >= size * 0.05) & (np.abs(xx - size / 2) <= yy / 2)
    raise ValueError(f"unknown shape {shape!r}")


def render_frames(spec: VideoSpec, cfg: SynthConfig):
    """Yields the RGB frames (H, W, 3, uint8) of a spec, one at a time (constant memory)."""
    size = max(4, int(cfg.object_size * cfg.height))
    masks = {s: _shape_mask(s, size) for s in SHAPES}
    for f in range(spec.num_frames):
        scene = sum(f >= c for c in spec.cut_frames)
        frame = np.empty((cfg.height, cfg.width, 3), dtype=np.uint8)
        frame[:] = spec.backgrounds[scene]
        for ev in spec.events:
            if ev.start_frame <= f <= ev.end_frame:
                u = (f - ev.start_frame) / max(1, ev.end_frame - ev.start_frame)
                (x0, y0), (x1, y1) = ev.path
                cx, cy = (x0 + u * (x1 - x0)) * cfg.width, (y0 + u * (y1 - y0)) * cfg.height
                top, left = int(cy - size / 2), int(cx - size / 2)
                region = frame[top : top + size, left : left + size]
                region[masks[ev.shape]] = COLORS[ev.color]
        yield frame


def write_video(frames, path: str | os.PathLike, fps: int, crf: int = 20) -> None:
    """Encodes RGB frames to H.264 mp4 with PyAV (single-threaded x264, so the decoded frames are reproducible; the
    bitstream is too in a plain install, but not always beside vLLM's CPU build: tests/chronosynth compares pixels)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        first = True
        for arr in frames:
            if first:
                stream.height, stream.width = arr.shape[:2]
                first = False
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _options(rng: np.random.Generator, spec: VideoSpec, answer: Event, pool: list[Event], cfg: SynthConfig):
    """Multiple-choice options: the answer, other objects of the video, then absent objects; distinct colours."""
    chosen = [answer.name]
    used_colors = {answer.color}
    for ev in [pool[i] for i in rng.permutation(len(pool))]:
        if len(chosen) == cfg.num_options:
            break
        if ev.color not in used_colors:
            chosen.append(ev.name)
            used_colors.add(ev.color)
    video_colors = {ev.color for ev in spec.events}
    spare = [c for c in COLORS if c not in used_colors and c not in video_colors]
    for i in rng.permutation(len(spare)):
        if len(chosen) == cfg.num_options:
            break
        chosen.append(f"{spare[i]} {SHAPES[int(rng.integers(0, len(SHAPES)))]}")
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    if cfg.shortcut == "answer_position":  # extra draws only here: splits without the cue are unchanged
        cue = LETTERS.index(cfg.shortcut_letter)
        others = [i for i in range(len(chosen)) if i != cue]
        slot = cue if rng.random() < cfg.shortcut_strength else others[int(rng.integers(0, len(others)))]
        here = chosen.index(answer.name)
        chosen[here], chosen[slot] = chosen[slot], chosen[here]
    letter = LETTERS[chosen.index(answer.name)]
    if cfg.shortcut == "option_length":  # the options keep their order; one of them gets longer
        here = chosen.index(answer.name)
        others = [i for i in range(len(chosen)) if i != here]
        slot = here if rng.random() < cfg.shortcut_strength else others[int(rng.integers(0, len(others)))]
        chosen[slot] = f"{chosen[slot]} {cfg.shortcut_filler}"
    return [f"{LETTERS[i]}. {name}" for i, name in enumerate(chosen)], letter


def make_questions(rng: np.random.Generator, spec: VideoSpec, cfg: SynthConfig) -> list[dict]:
    evs = spec.events
    rows = []
    for family in cfg.families:
        if family == "order":
            which = "first" if rng.random() < 0.5 else "last"
            target = evs[0] if which == "first" else evs[-1]
            others = [e for e in evs if e is not target]
            options, letter = _options(rng, spec, target, others, cfg)
            rows.append(
                dict(
                    problem=ORDER_TEMPLATE.format(which=which),
                    options=options,
                    solution=letter,
                    problem_type="multiple_choice",
                    family=family,
                )
            )
        elif family == "count":
            rows.append(
                dict(
                    problem=COUNT_TEMPLATE, options=[], solution=str(len(evs)), problem_type="numerical", family=family
                )
            )
        elif family == "succession":
            if len(evs) < 2:
                continue
            i = int(rng.integers(0, len(evs) - 1))
            answer = evs[i + 1]
            others = [e for j, e in enumerate(evs) if j not in (i, i + 1)]
            options, letter = _options(rng, spec, answer, others, cfg)
            # The target itself must not be an option: it never "appears right after" itself.
            rows.append(
                dict(
                    problem=SUCCESSION_TEMPLATE.format(target=evs[i].name),
                    options=options,
                    solution=letter,
                    problem_type="multiple_choice",
                    family=family,
                )
            )
        elif family == "grounding":
            ev = evs[int(rng.integers(0, len(evs)))]
            rows.append(
                dict(
                    problem=GROUNDING_TEMPLATE.format(target=ev.name),
                    options=[],
                    solution=f"[{ev.start:.2f}, {ev.end:.2f}]",
                    problem_type="temporal_grounding",
                    family=family,
                )
            )
    return rows


def generate(
    output_dir: str | os.PathLike,
    num_videos: int,
    seed: int = 0,
    config: SynthConfig | None = None,
    progress: bool = True,
) -> Path:
    """Writes ``num_videos`` mp4 files and ``manifest.jsonl`` under ``output_dir``; returns the manifest path.

    Video ``i`` depends only on ``(seed, i)``, so a run is reproducible and can be extended.
    """
    from tqdm.auto import tqdm

    cfg = config or SynthConfig()
    out = Path(output_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.jsonl"
    tmp = manifest.with_suffix(".jsonl.tmp")
    with open(tmp, "w") as fh:
        for i in tqdm(range(num_videos), desc="chronosynth", disable=not progress):
            rng = np.random.default_rng([seed, i])
            video_id = f"cs{seed}-{i:05d}"
            spec = _sample_spec(rng, cfg, video_id)
            rel = f"videos/{video_id}.mp4"
            write_video(render_frames(spec, cfg), out / rel, spec.fps, cfg.crf)
            truth = dict(
                event_timestamps=[e.start for e in spec.events],
                events=[dict(name=e.name, start=e.start, end=e.end) for e in spec.events],
                scene_cuts=spec.scene_cuts,
                duration=spec.duration,
                seed=seed,
            )
            for q in make_questions(rng, spec, cfg):
                family = q.pop("family")
                row = dict(id=f"{video_id}-{family}", video=rel, **q, family=family, **truth)
                fh.write(json.dumps(row) + "\n")
    os.replace(tmp, manifest)  # a manifest exists only when every video it names does
    (out / "synth_config.json").write_text(json.dumps(dict(asdict(cfg), seed=seed, num_videos=num_videos), indent=2))
    return manifest


# --------------------------------------------------------------------------------------------------------------------
# Oracle: recompute answers from pixels. Used by tests (answers must depend on frames) and as a reference "perfect
# perception" solver for the demo.
# --------------------------------------------------------------------------------------------------------------------


def detect_colors(frame: np.ndarray, tolerance: int = 60, min_fraction: float = 0.004) -> set[str]:
    """Object colours visible in an RGB frame (pixels within ``tolerance`` per channel of a palette colour)."""
    min_pixels = max(4, int(min_fraction * frame.shape[0] * frame.shape[1]))
    px = frame.reshape(-1, 3).astype(np.int16)
    found = set()
    for name, rgb in COLORS.items():
        close = np.all(np.abs(px - np.asarray(rgb, dtype=np.int16)) <= tolerance, axis=1)
        if int(close.sum()) >= min_pixels:
            found.add(name)
    return found


def answer_from_frames(frames, timestamps, row: dict) -> str:
    """The answer to a ChronoSynth ``row`` as implied by the given frames, taken in the given order.

    Frames are read in list order; ``timestamps`` label them (grounding answers report them).
    """
    appearances: list[str] = []  # colours in order of first appearance
    seen_at: dict[str, list[float]] = {}
    for frame, ts in zip(frames, timestamps):
        for color in sorted(detect_colors(np.asarray(frame))):
            if color not in seen_at:
                appearances.append(color)
                seen_at[color] = []
            seen_at[color].append(float(ts))
    family = row.get("family") or row["id"].rsplit("-", 1)[-1]

    def letter_of(color: str | None) -> str:
        for opt in row["options"]:
            letter, name = opt.split(". ", 1)
            if color is not None and name.split(" ")[0] == color:
                return letter
        return ""

    if family == "count":
        return str(len(appearances))
    if family == "order":
        if not appearances:
            return ""
        return letter_of(appearances[0] if "first" in row["problem"] else appearances[-1])
    if family == "succession":
        target = row["problem"].split("right after the ", 1)[1].split(" ")[0]
        if target not in appearances or appearances.index(target) + 1 >= len(appearances):
            return ""
        return letter_of(appearances[appearances.index(target) + 1])
    if family == "grounding":
        target = row["problem"].split("When did the ", 1)[1].split(" ")[0]
        if target not in seen_at:
            return ""
        return f"[{min(seen_at[target]):.2f}, {max(seen_at[target]):.2f}]"
    raise ValueError(f"unknown family {family!r}")
