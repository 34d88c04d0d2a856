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
    _check_names(parser, argv)  # before the dataclasses validate: a typo's default must not be blamed first
    try:
        return parser.parse_args_and_config(args=argv)
    except ValueError as exc:
        message = str(exc)
        m = _UNKNOWN.search(message)
        if not m:
            raise UserError(message.splitlines()[0] if message else type(exc).__name__) from exc
        where = "in the config file" if m.group(1).startswith("Unknown") else "on the command line"
        raise UserError(f"unknown {where}: {_explain(parser, m.group(2))}") from exc


def _check_names(parser, argv: list[str]) -> None:
    """Unknown keys of the ``--config`` file and unknown flags, as one ``UserError`` naming them (with the nearest
    valid names). Checked before any value: a misspelled key leaves a default in place, and a relation that default
    breaks ("generation_batch_size must be divisible by num_generations") would otherwise be reported instead."""
    import yaml

    flags = set(parser._option_string_actions)
    if "--config" in argv:
        with open(argv[argv.index("--config") + 1]) as fh:
            config = yaml.safe_load(fh) or {}
        if not isinstance(config, dict):
            raise UserError(f"--config {argv[argv.index('--config') + 1]}: not a YAML mapping of keys to values")
        unknown = [k for k in config if k != "env" and f"--{k}" not in flags]  # `env`: TrlParser's variables
        if unknown:
            raise UserError(f"unknown in the config file: {_explain(parser, unknown)}")
    unknown = [
        a.split("=")[0] for a in argv if a.startswith("--") and a != "--config" and a.split("=")[0] not in flags
    ]
    if unknown:
        raise UserError(f"unknown on the command line: {_explain(parser, unknown)}")


def _explain(parser, listed) -> str:
    """The unknown names (a list, or argparse's printed list) with the nearest known name of each."""
    if isinstance(listed, str):
        listed = [k for k in re.findall(r"'(--?[^']+)'", listed) if k.startswith("-")] or [listed]
    keys = [str(k).lstrip("-").split("=")[0] for k in listed]
    known = sorted({a.dest for a in parser._actions if a.dest != "help"})
    parts = []
    for key in keys:
        close = difflib.get_close_matches(key.replace("-", "_"), known, n=1, cutoff=0.6)
        parts.append(f"`{key}`" + (f" (did you mean `{close[0]}`?)" if close else ""))
    return ", ".join(parts)


# The variables that take each kind of download offline (huggingface_hub's, and each library's own).
OFFLINE_VARIABLES = {
    "model": ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"),
    "dataset": ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"),
}


def offline_variable(kind: str = "model") -> str | None:
    """The environment variable that makes loading a ``kind`` from the Hub impossible here, if one is set."""
    for name in OFFLINE_VARIABLES[kind]:
        if os.environ.get(name, "").lower() in ("1", "true", "yes", "on"):
            return name
    return None


def check_model_path(name: str | None, kind: str = "model", key: str = "model_name_or_path") -> None:
    """A model (or dataset) given as a local path must exist; offline, anything that is not a local folder cannot
    load. The message names the offline variable that is set."""
    if not name:
        raise UserError(f"set `{key}` (a local folder or a Hub {kind} id)")
    if os.path.isdir(name):
        return
    looks_local = name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or os.sep + os.sep in name
    if looks_local:
        raise UserError(f"{kind} {name}: no such folder")
    variable = offline_variable(kind)
    if variable:
        raise UserError(f"{kind} {name}: not a local folder, and the Hub is offline ({variable}=1)")
