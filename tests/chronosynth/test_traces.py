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
    assert tally_trace(EVENTS, ts) == " none no 0 red yes 1 red no 1 none no 1 blue yes 2"
    options = ["A. green disc", "B. blue disc", "C. red square", "D. white square"]
    first = "Which object appeared first in the video?"
    checks = " green red no none, blue red no none, red red yes C, white red no C"
    assert tally_trace(EVENTS, ts, problem=first, options=options).endswith("blue yes 2 first red, so," + checks)
    last = "Which object appeared last in the video?"
    checks = " green blue no none, blue blue yes B, red blue no B, white blue no B"
    assert tally_trace(EVENTS, ts, problem=last, options=options).endswith(" last blue, so," + checks)
    assert tally_trace(EVENTS, ts, problem="How many objects appeared in the video?").endswith("blue yes 2")
    nothing = " none no 0 first none, so, green none no none, blue none no none, red none no none, white none no none"
    assert tally_trace(EVENTS, [3.0], problem=first, options=options) == nothing
    # Repeated frames of one object count once; objects are counted in the keyframes, not in the video.
    assert tally_trace(EVENTS, [1.2, 1.4, 1.6]) == " red yes 1 red no 1 red no 1"
    args = SFTScriptArguments(dataset_name="x", trace_format="tally")
    row = dict(solution="C", events=EVENTS, timestamps=[1.5, 4.5], problem=first, options=options)
    think = " red yes 1 blue yes 2 first red, so, green red no none, blue red no none, red red yes C, white red no C"
    assert sft_completion(row, args)[0]["content"] == f"<think>{think}</think><answer>C</answer>"


def test_trace_answer_is_what_the_keyframes_support():
    from kfgrpo.chronosynth.traces import trace_answer

    options = ["A. green disc", "B. blue disc", "C. red square", "D. white square"]
    first, last = "Which object appeared first in the video?", "Which object appeared last in the video?"
    assert trace_answer(EVENTS, [1.5, 4.5], problem=first, options=options) == "C"
    assert trace_answer(EVENTS, [1.5, 4.5], problem=last, options=options) == "B"
    assert trace_answer(EVENTS, [3.0, 4.5], problem=first, options=options) == "B"  # the keyframes missed red
    assert trace_answer(EVENTS, [1.5, 4.5], problem=first, options=options[:2]) == "none"
    count = "How many objects appeared in the video?"
    assert trace_answer(EVENTS, [1.5, 1.8, 4.5], problem=count) == "2"
    assert trace_answer(EVENTS, [1.5, 3.0], problem=count) == "1"
    assert trace_answer(EVENTS, [], problem=count) == "0"
    assert trace_answer(EVENTS, [1.5], problem="What colour is the square?") is None
