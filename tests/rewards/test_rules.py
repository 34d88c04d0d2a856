"""One interface for every ``kf_reward`` rule, and a trainer that never branches on a rule's name."""

import dataclasses
import inspect
import re

from kfgrpo import trainer as trainer_module
from kfgrpo.config import KFGRPOConfig
from kfgrpo.rewards.rules import COMMON_KNOBS, RULES, knob_readers


def test_every_rule_declares_what_it_needs_and_what_it_gives():
    assert set(RULES) == {"group", "rank", "shape", "gate", "credit"}
    for name, rule in RULES.items():
        assert rule.name == name and rule.acts_on in ("reward", "advantages")
        overrides = vars(rule).keys() | {k for base in rule.__mro__[1:-2] for k in vars(base)}
        assert ("reward" if rule.acts_on == "reward" else "advantage_factor") in overrides, name


def test_every_knob_a_rule_reads_is_a_config_field_with_help():
    fields = {f.name: f for f in dataclasses.fields(KFGRPOConfig)}
    for knob, readers in knob_readers().items():
        assert knob in fields, knob
        assert "Read by kf_reward: " + ", ".join(readers) in fields[knob].metadata["help"], knob
    assert all(k in fields for k in COMMON_KNOBS)


def test_the_trainer_does_not_branch_on_a_rule_name():
    source = inspect.getsource(trainer_module)
    assert not re.search(r"kf_reward\s*(==|!=|in)", source)
    assert not re.search(r"kf_probe_mode\s*(==|!=)", source)
