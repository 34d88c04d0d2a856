"""How each protocol scores common answer phrasings: kfgrpo's scorer (training and ``--protocol reasoning``) next to
Video-R1's eval_bench rules (``--protocol video-r1``) and lmms-eval's Video-MME extraction, current and classic
(``--protocol lmms-eval`` / ``lmms-eval-classic``). Prints the Markdown table docs/evaluation.md shows.

    python benchmarks/scoring_phrasings.py
"""

from __future__ import annotations

from kfgrpo.eval.protocols import get_protocol

OPTIONS = ["A. a red square", "B. a blue circle", "C. A man opening a door", "D. nothing"]
MC = [
    ("B", "B"),
    ("(B)", "B"),
    ("B. a blue circle", "B"),
    ("Answer: B", "B"),
    ("The correct option is (B).", "B"),
    ("I think it is B", "B"),
    ("a blue circle", "B"),
    ("A man opening a door", "C"),
    ("A man opening a door", "A"),
    ("A or C", "A"),
    ("Either A or C", "C"),
    ("<think>frame A shows a door</think><answer>B</answer>", "B"),
    ("<think>frame A shows a door</think><answer>B", "B"),
    ("<think>A woman appears and then", "A"),
    ("A woman appears first, then", "A"),
    ("Based on the video, the answer is (C).", "C"),
    ("b", "B"),
    ("**B**", "B"),
    ("Ｂ", "B"),
    ("B - a blue circle", "B"),
    ("A. a red square is wrong; the answer is B", "B"),
]
OTHER = [
    ("<answer>1,500</answer>", "1,000", "numerical"),
    ("<answer>3.0</answer>", "3", "numerical"),
    ("<answer>3</answer>", "3", "numerical"),
    ("<answer>3 or 4</answer>", "3", "numerical"),
    ("<answer>between 3 and 5</answer>", "3", "numerical"),
    ("<answer>three</answer>", "3", "numerical"),
    ("<answer>three or four</answer>", "3", "numerical"),
    ("<answer>1/2</answer>", "0.5", "numerical"),
    ("<answer>two and a half</answer>", "2.5", "numerical"),
    ("<answer>12 500</answer>", "12500", "numerical"),
    ("<answer>10.0-15.0</answer>", "[10.0, 15.0]", "temporal_grounding"),
    ("<answer>[15, 10]</answer>", "[10.0, 15.0]", "temporal_grounding"),
    ("<answer>00:10 to 00:15</answer>", "[10.0, 15.0]", "temporal_grounding"),
    ("<answer>90</answer>", "100", "regression"),
    ("<answer>STOP THERE</answer>", "STOP HERE", "ocr"),
    ("<answer>a man is running</answer>", "a man runs", "free_form"),
]


def cell(protocol, output, solution, ptype) -> str:
    try:
        protocol.check([dict(id="x", problem_type=ptype)])
    except ValueError:
        return "n/a"
    v = protocol.verdict(output, dict(problem="?", options=OPTIONS, solution=solution, problem_type=ptype))
    if ptype != "multiple_choice":
        read = "" if v.answered else " (none)"
    elif not v.answer:
        read = " (none)"
    else:
        read = f" ({v.answer})" if len(v.answer) <= 12 else " (all text)"
    return f"{v.score:.2f}".rstrip("0").rstrip(".") + read


def main():
    protocols = [get_protocol(n, "videomme") for n in ("reasoning", "video-r1", "lmms-eval", "lmms-eval-classic")]
    print(
        "| output | type | solution | kfgrpo (`reasoning`, training) | Video-R1 eval_bench | lmms-eval | lmms-eval classic |"
    )
    print("|---|---|---|---|---|---|---|")
    for output, solution, ptype in [(o, s, "multiple_choice") for o, s in MC] + OTHER:
        cells = [cell(p, output, solution, ptype) for p in protocols]
        shown = output.replace("|", "\\|").replace("\n", " ")
        print(f"| `{shown}` | {ptype} | {solution} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
