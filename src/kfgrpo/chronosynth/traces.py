"""Reasoning traces for ChronoSynth rows, from their ground-truth ``events`` and the keyframes' ``timestamps``.

``kfgrpo sft`` uses them as supervised targets (``trace_format``): each names only what the *selected* keyframes show,
so a trace never mentions an object the model cannot see.
"""

from __future__ import annotations

import re


def _visible(events, t: float, detail: str) -> list[str]:
    """Names of the objects on screen at time ``t`` (event start <= t <= end)."""
    return [
        e["name"].split(" ")[0] if detail == "color" else e["name"]
        for e in events or []
        if e["start"] - 1e-6 <= t <= e["end"] + 1e-6
    ]


def keyframe_trace(events, timestamps, detail: str = "color") -> str:
    """The objects visible in the keyframes, in order of first appearance."""
    seen = []
    for t in timestamps or []:
        seen += [name for name in _visible(events, t, detail) if name not in seen]
    return ", then ".join(seen) if seen else "nothing"


def frame_trace(events, timestamps, detail: str = "color") -> str:
    """What each keyframe shows, numbered from 1: ``1 none, 2 red, 3 red, 4 blue``."""
    items = []
    for i, t in enumerate(timestamps or []):
        names = _visible(events, t, detail)
        items.append(f"{i + 1} {names[0] if names else 'none'}")
    return ", ".join(items)


def tally_trace(events, timestamps, detail: str = "color", problem: str = "", options=None) -> str:
    """Per keyframe, what it shows and how many objects have appeared so far: `` none 0, red 1, red 1, blue 2,``.

    One step per frame, each the same number of tokens with the tiny tokenizer (colours are single tokens), so step i
    lies at a fixed distance from frame i when the question precedes the frames (``question_position: before``). The
    running count makes counting one local step per frame: it grows when a frame shows an object the previous frame
    did not (ChronoSynth objects never return). A question about the ``first`` / ``last`` object ends with that object
    and one check per option: its letter, the colour it names, the object sought, and the answer so far
    (`` first red, so A blue red none, B red red B, C white red B, D green red B``): the option's letter where the
    two colours match, else the previous check's answer (``none`` before any match). A check is as long as an option
    line (5 tokens), so it copies its option from a fixed distance and compares two adjacent tokens; the answer so far
    is either its own letter (3 tokens back) or the previous check's (5 back), and the final answer copies the last
    one (2 tokens back). Every step is then a copy from a fixed distance; with ``yes`` / ``no`` checks the answer had
    to find the letter marked ``yes`` by its content, the step that was learned last and least reliably across seeds.
    (Looking a colour up among the options in one step, the tiny model stayed at chance.)
    """
    steps, count, previous, seen = [], 0, None, []
    for t in timestamps or []:
        names = _visible(events, t, detail)
        shown = names[0] if names else None
        if shown is not None and shown != previous:
            count += 1
            seen.append(shown)
        previous = shown
        steps.append(f" {shown or 'none'} {count},")
    trace = "".join(steps)
    words = set(re.findall(r"[a-z]+", (problem or "").lower()))
    for which, index in (("first", 0), ("last", -1)):
        if which in words:
            target = seen[index] if seen else "none"
            checks, answer = [], "none"
            for option in options or []:
                letter, _, text = str(option).partition(". ")
                named = text if detail == "name" else text.split(" ")[0]
                answer = letter if named == target else answer
                checks.append(f" {letter} {named} {target} {answer}")
            trace += f" {which} {target}, so" + ",".join(checks)
            break
    return trace
