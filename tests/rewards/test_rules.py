"""One interface for every ``kf_reward`` rule, and a trainer that never branches on a rule's name."""

import dataclasses
import inspect
import re

import pytest

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


def test_credit_is_logged_per_solution_letter():
    """The gate's credit on the groups whose right answer is each letter: a cue on one letter shows up here."""
    import torch

    from kfgrpo.rewards.accuracy import solution_letter
    from kfgrpo.rewards.rules import ProbeBatch, make_rule

    args = KFGRPOConfig(output_dir="unused", kf_reward="credit", kf_probes=["shuffle"], kf_probe_bonus=[1.0],
                        kf_saliency_weight=0.0, report_to="none", use_cpu=True, bf16=False)  # fmt: skip
    rule = make_rule(args)
    rows = [{"problem_type": "multiple_choice", "solution": s} for s in ("<answer>A</answer>", "B", "A")]
    rows.append({"problem_type": "numerical", "solution": "3"})
    letters = torch.tensor([solution_letter(r) for r in rows])
    assert letters.tolist() == [0, 1, 0, -1]
    # p = 0.5 everywhere; the shuffle probe scores 0.5, 0.0, 0.25, 0.0 -> g = 0, 1, 0.5, 1 (the last group not probed)
    accuracy = torch.tensor([1.0, 0.0] * 4)
    batch = ProbeBatch(accuracy, 2, ("shuffle",), torch.zeros(4, 1), solution_letter=letters)
    batch.probe_accuracy = torch.tensor([[0.5], [0.0], [0.25], [float("nan")]])
    m = rule.metrics(batch)
    assert m["kf/credit/answer_A"] == 0.25 and m["kf/credit/answer_B"] == 1.0
    assert not any(k.startswith("kf/credit/answer_") and k[-1] not in "AB" for k in m)


def test_the_credit_rule_aggregates_its_probes_as_configured():
    """kf_credit_aggregate reaches the rule: one group where only the blind probe drops (1.0), shuffle and swap not."""
    import torch

    from kfgrpo.rewards.rules import ProbeBatch, make_rule

    probes = ["shuffle", "swap_salient", "blind"]
    factors = {}
    for aggregate in ("max", "mean", "min"):
        args = KFGRPOConfig(output_dir="unused", kf_reward="credit", kf_probes=probes, kf_probe_bonus=[1.0] * 3,
                            kf_saliency_weight=0.0, kf_credit_aggregate=aggregate, report_to="none", use_cpu=True,
                            bf16=False)  # fmt: skip
        batch = ProbeBatch(torch.tensor([1.0, 1.0, 0.0, 0.0]), 4, tuple(probes), torch.zeros(1, 3))
        batch.probe_accuracy = torch.tensor([[0.5, 0.75, 0.0]])  # p = 0.5: drops 0, 0, 1
        factors[aggregate] = make_rule(args).advantage_factor(batch).tolist()
    assert factors == {"max": [1.0] * 4, "mean": [pytest.approx(1 / 3)] * 4, "min": [0.0] * 4}
