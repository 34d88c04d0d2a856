"""Numbers as a careful grader reads them in an answer, rewritten as plain decimals for the numeric scorers.

``read_numerals(text)`` rewrites, in this order:

- Unicode forms: full-width digits (``３``), vulgar fractions (``½``, NFKC), the minus sign ``−`` and the fraction slash;
- written-out numbers, only in an answer with no digit at all (``three`` → 3, ``twenty-one`` → 21, ``one hundred and
  five`` → 105, ``a dozen`` → 12, ``two and a half`` → 2.5, ``three quarters`` → 0.75, ``none`` / ``zero`` → 0): an
  answer that has digits is read from its digits, so "one of the 3 cars" stays 3;
- fractions: ``1/2`` → 0.5, ``1 1/2`` → 1.5, ``2 and a half`` → 2.5 (a slash between two numbers is a fraction, not a hedge: "3 or 4" is);
- digit groups separated by spaces (``12 500`` → 12500, as SI and many locales write them);
- scale words after a number: ``1.5 million`` → 1500000, ``3 thousand`` → 3000.

What must stay wrong stays wrong: the rewritten text goes through the same hedge check ("three or four" is "3 or 4",
no answer) and the same first-number rule as digits.
"""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction

_UNITS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen".split()
    )
}
_UNITS["none"] = 0
_TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9}
_PARTS = {"half": 2, "halves": 2, "third": 3, "thirds": 3, "quarter": 4, "quarters": 4, "fourth": 4, "fourths": 4}
_NUMBER_WORDS = {*_UNITS, *_TENS, *_SCALES, *_PARTS, "hundred", "dozen"}
_JOINERS = {"and", "a", "an"}  # inside a number: "one hundred and five", "two and a half", "a dozen"
_WORD = re.compile(r"[A-Za-z]+")

_MIXED = re.compile(r"(?<![\d.])(\d+)\s+(\d+)\s*/\s*(\d+)(?![\d.])")
_FRACTION = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)(?![\d.])")
_SPACED = re.compile(r"(?<![\d.,])\d{1,3}(?: \d{3})+(?![\d.,]| \d)")
_AND_PART = re.compile(r"(?<![\d.])(\d+)\s+and\s+an?\s+(half|third|quarter)\b", re.IGNORECASE)
_SCALE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(thousand|million|billion)\b", re.IGNORECASE)


def read_numerals(text: str) -> str:
    """``text`` with its numbers in any of the forms above written as plain decimals."""
    text = unicodedata.normalize("NFKC", text).replace("\u2212", "-").replace("\u2044", "/")
    if not any(c.isdigit() for c in text):
        text = _words_to_digits(text)
    text = _AND_PART.sub(lambda m: _decimal(int(m[1]) + Fraction(1, _PARTS[m[2].lower()])), text)  # "2 and a half"
    text = _MIXED.sub(lambda m: _decimal(int(m[1]) + Fraction(int(m[2]), int(m[3]))) if int(m[3]) else m[0], text)
    text = _FRACTION.sub(lambda m: _decimal(Fraction(m[1]) / Fraction(m[2])) if float(m[2]) else m[0], text)
    text = _SPACED.sub(lambda m: m[0].replace(" ", ""), text)
    return _SCALE.sub(lambda m: _decimal(Fraction(m[1]) * _SCALES[m[2].lower()]), text)


def _decimal(value: Fraction) -> str:
    return str(int(value)) if value.denominator == 1 else repr(float(value))


def _words_to_digits(text: str) -> str:
    """Each run of number words replaced by its value; other words untouched."""
    words = list(_WORD.finditer(text))
    out, last, i = [], 0, 0
    while i < len(words):
        end = _run_end(words, i)
        if end == i:
            i += 1
            continue
        out += [text[last : words[i].start()], _decimal(_value([w[0].lower() for w in words[i:end]]))]
        last = words[end - 1].end()
        i = end
    return "".join(out) + text[last:]


def _run_end(words, start: int) -> int:
    """The end of the run of number words (joiners inside) that starts at ``start``; ``start`` when there is none."""
    lower = [w[0].lower() for w in words] + ["", ""]
    end, i = start, start
    while i < len(words):
        word, after, then = lower[i : i + 3]
        if word in _NUMBER_WORDS:
            end = i = i + 1
        elif word in ("a", "an") and after in {"hundred", "dozen", *_SCALES, *_PARTS}:  # "a dozen", "a half"
            i += 1
        elif (
            word == "and"
            and i > start
            and (  # "one hundred and five", "two and a half"; not "three and four"
                (lower[i - 1] in {"hundred", *_SCALES} and after in _NUMBER_WORDS)
                or (after in ("a", "an") and then in _PARTS)
            )
        ):
            i += 1
        else:
            break
    return end


def _value(words: list[str]) -> Fraction:
    """The value of a run of number words."""
    total, current, fraction = Fraction(0), None, Fraction(0)
    for i, word in enumerate(words):
        if word in _UNITS or word in _TENS:
            current = (current or 0) + _UNITS.get(word, _TENS.get(word, 0))
        elif word == "hundred":
            current = (current or 1) * 100
        elif word == "dozen":
            current = (current or 1) * 12
        elif word in _SCALES:
            total += (current or 1) * _SCALES[word]
            current = None
        elif word in _PARTS:
            if current is not None and words[i - 1] not in _JOINERS:  # "three quarters", "one half"
                fraction += Fraction(current, _PARTS[word])
                current = None
            else:  # "a half", "two and a half"
                fraction += Fraction(1, _PARTS[word])
    return total + (current or 0) + fraction
