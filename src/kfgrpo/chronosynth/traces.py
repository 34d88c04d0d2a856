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
    """Per keyframe, what it shows, whether it is a new object, and how many objects have appeared so far:
    `` none no 0 red yes 1 red no 1 blue yes 2``.

    One step per frame, each the same number of tokens with the tiny tokenizer (colours are single tokens), so step i
    lies at a fixed distance from frame i when the question precedes the frames (``question_position: before``). The
    running count makes counting one local step per frame: ``yes`` when a frame shows an object the previous frame did
    not (ChronoSynth objects never return), and the count grows after a ``yes``. A question about the ``first`` / ``last`` object ends with that
    object and one check per option: the colour it names, the object sought, whether they match, and the answer so far
    (`` first red, so, blue red no none, red red yes B, white red no B, green red no B``): the option's letter after
    a match, else the previous check's answer (``none`` before any match). A check is as long as an option line
    (5 tokens), so every step copies from a fixed distance or looks at adjacent tokens: the colour from its option
    line, the object sought from the previous check (5 back), the match from the two tokens before it, and the answer
    so far, after ``yes`` the letter of the option line, after ``no`` the previous check's answer (5 back); the final
    answer copies the last one. Deciding the match and choosing the answer are two steps: when one step did both
    (`` B red red B``), the compare failed to form on some runs of the 2-layer demo model, which then marked the last
    option. (Looking a colour up among the options in one step, the tiny model stayed at chance.)
    """
    steps, seen, conclusion = _tally(events, timestamps, detail, problem, options)
    trace = "".join(f" {shown} {'yes' if new else 'no'} {count}" for shown, new, count in steps)
    if conclusion is not None:
        which, target, checks = conclusion
        trace += f" {which} {target}, so," + ",".join(
            f" {named} {target} {'yes' if named == target else 'no'} {answer}" for _, named, answer in checks
        )
    return trace


def _tally(events, timestamps, detail, problem, options):
    """The tally's steps ``[(shown, whether it is a new object, count so far)]``, the objects in order, and for a ``first`` / ``last`` question
    ``(which, target, [(letter, colour named, answer so far)])`` (else None)."""
    steps, count, previous, seen = [], 0, None, []
    for t in timestamps or []:
        names = _visible(events, t, detail)
        shown = names[0] if names else None
        new = shown is not None and shown != previous
        if new:
            count += 1
            seen.append(shown)
        previous = shown
        steps.append((shown or "none", new, count))
    words = set(re.findall(r"[a-z]+", (problem or "").lower()))
    for which, index in (("first", 0), ("last", -1)):
        if which in words:
            target = seen[index] if seen else "none"
            checks, answer = [], "none"
            for option in options or []:
                letter, _, text = str(option).partition(". ")
                named = text if detail == "name" else text.split(" ")[0]
                answer = letter if named == target else answer
                checks.append((letter, named, answer))
            return steps, seen, (which, target, checks)
    return steps, seen, None


def trace_answer(events, timestamps, detail: str = "color", problem: str = "", options=None) -> str | None:
    """The answer a trace over these keyframes reaches: for a ``how many`` question the number of objects the tally
    counted, for a ``first`` / ``last`` question the letter of the option naming that object (``none`` if no option
    does); None for other questions. It differs from the row's solution when the keyframes miss an object."""
    steps, _, conclusion = _tally(events, timestamps, detail, problem, options)
    if conclusion is not None:
        checks = conclusion[2]
        return checks[-1][2] if checks else "none"
    if "how many" in (problem or "").lower():
        return str(steps[-1][2] if steps else 0)
    return None
