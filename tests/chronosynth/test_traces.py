"""ChronoSynth reasoning traces: they name only what the selected keyframes show."""

from kfgrpo.chronosynth import frame_trace, keyframe_trace, tally_trace
from kfgrpo.sft import SFTScriptArguments, sft_completion

EVENTS = [dict(name="red square", start=1.0, end=2.0), dict(name="blue disc", start=4.0, end=5.0)]


def test_keyframe_trace_names_only_what_the_keyframes_show():
    assert keyframe_trace(EVENTS, [0.5, 1.5, 1.8, 4.5]) == "red, then blue"
    assert keyframe_trace(EVENTS, [1.5, 4.5], detail="name") == "red square, then blue disc"
    assert keyframe_trace(EVENTS, [3.0]) == "nothing"  # the missed event is not mentioned


def test_frame_trace_numbers_every_keyframe():
    assert frame_trace(EVENTS, [0.5, 1.5, 3.0, 4.5]) == "1 none, 2 red, 3 none, 4 blue"
    assert frame_trace(EVENTS, [1.5], detail="name") == "1 red square"
    args = SFTScriptArguments(dataset_name="x", trace_format="frames")
    row = dict(solution="B", events=EVENTS, timestamps=[1.5, 4.5])
    assert sft_completion(row, args)[0]["content"] == "<think>1 red, 2 blue.</think><answer>B</answer>"


def test_tally_trace_counts_objects_and_names_the_option():
    ts = [0.5, 1.5, 1.8, 3.0, 4.5]
    assert tally_trace(EVENTS, ts) == " none 0, red 1, red 1, none 1, blue 2,"
    options = ["A. green disc", "B. blue disc", "C. red square", "D. white square"]
    first = "Which object appeared first in the video?"
    checks = " A green red none, B blue red none, C red red C, D white red C"
    assert tally_trace(EVENTS, ts, problem=first, options=options).endswith("blue 2, first red, so" + checks)
    last = "Which object appeared last in the video?"
    checks = " A green blue none, B blue blue B, C red blue B, D white blue B"
    assert tally_trace(EVENTS, ts, problem=last, options=options).endswith(" last blue, so" + checks)
    assert tally_trace(EVENTS, ts, problem="How many objects appeared in the video?").endswith("blue 2,")
    nothing = " none 0, first none, so A green none none, B blue none none, C red none none, D white none none"
    assert tally_trace(EVENTS, [3.0], problem=first, options=options) == nothing
    # Repeated frames of one object count once; objects are counted in the keyframes, not in the video.
    assert tally_trace(EVENTS, [1.2, 1.4, 1.6]) == " red 1, red 1, red 1,"
    args = SFTScriptArguments(dataset_name="x", trace_format="tally")
    row = dict(solution="C", events=EVENTS, timestamps=[1.5, 4.5], problem=first, options=options)
    think = " red 1, blue 2, first red, so A green red none, B blue red none, C red red C, D white red C"
    assert sft_completion(row, args)[0]["content"] == f"<think>{think}</think><answer>C</answer>"
