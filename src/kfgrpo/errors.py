"""User mistakes, reported as one line.

A ``UserError`` is a mistake in what the user gave (a misspelled key, a missing file, an invalid value, a Hub push that
cannot work): the command line prints ``kfgrpo <command>: <message>`` and exits with code 2. ``--debug`` (anywhere on
the command line) or ``KFGRPO_DEBUG=1`` shows the traceback instead. Any other exception is a bug or an environment
failure and keeps its traceback.
"""

from __future__ import annotations

import difflib
import os
import re


class UserError(ValueError):
    """A mistake in the user's input; the message is one line that says what and where."""


_UNKNOWN = re.compile(r"(Unknown arguments from config file|not used by the HfArgumentParser): (\[.*\])")


def make_parser(dataclasses_, prog: str):
    """TRL's ``TrlParser`` over ``dataclasses_``, its help listing ``--config`` (read by ``parse_args_and_config``,
    which removes it before parsing) and saying what each ``--no_*`` flag turns off."""
    import argparse

    from trl import TrlParser

    parser = TrlParser(dataclasses_, prog=prog)
    parser.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        help="YAML file with values for any of the flags below; flags given on the command line win.",
    )
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--no_") and action.help:
                name = option[len("--no_") :]
                action.help = f"Turn `--{name}` off (sets it to false). --{name}: {action.help}"
    return parser


def parse_args(parser, argv: list[str]):
    """``parser.parse_args_and_config(argv)`` (TrlParser) with user mistakes as ``UserError``: a ``--config`` that does
    not exist, unknown keys or flags (with the nearest valid names), and the values the dataclasses reject."""
    if "--config" in argv:
        i = argv.index("--config")
        path = argv[i + 1] if i + 1 < len(argv) else None
        if path is None or not os.path.isfile(path):
            raise UserError(f"--config {path or '(missing)'}: no such file")
    try:
        return parser.parse_args_and_config(args=argv)
    except ValueError as exc:
        message = str(exc)
        m = _UNKNOWN.search(message)
        if not m:
            raise UserError(message.splitlines()[0] if message else type(exc).__name__) from exc
        where = "in the config file" if m.group(1).startswith("Unknown") else "on the command line"
        raise UserError(f"unknown {where}: {_explain(parser, m.group(2))}") from exc


def _explain(parser, listed: str) -> str:
    keys = [k.lstrip("-").split("=")[0] for k in re.findall(r"'(--?[^']+)'", listed) if k.startswith("-")]
    known = sorted({a.dest for a in parser._actions if a.dest != "help"})
    parts = []
    for key in keys or [listed]:
        close = difflib.get_close_matches(key.replace("-", "_"), known, n=1, cutoff=0.6)
        parts.append(f"`{key}`" + (f" (did you mean `{close[0]}`?)" if close else ""))
    return ", ".join(parts)


def check_model_path(name: str | None) -> None:
    """A model given as a local path must exist; offline, anything that is not a local folder cannot load."""
    if not name:
        raise UserError("set `model_name_or_path` (a local folder or a Hub model id)")
    if os.path.isdir(name):
        return
    looks_local = name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or os.sep + os.sep in name
    if looks_local:
        raise UserError(f"model {name}: no such folder")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise UserError(f"model {name}: not a local folder, and the Hub is offline (HF_HUB_OFFLINE=1)")
