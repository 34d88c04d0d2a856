from kfgrpo.rewards import LengthReward


def test_length_rule():
    reward = LengthReward(num_generations=4, min_tokens=3, max_tokens=5, bonus=0.2, min_correct=2)
    comps = ["<answer>A</answer>", "<answer>A</answer>", "<answer>B</answer>", "<answer>A</answer>"] * 2
    ids = [[1] * 4, [1] * 9, [1] * 4, [1] * 2] + [[1] * 4] * 4
    sol = ["A"] * 4 + ["B", "C", "C", "C"]  # second group: only one correct → no length reward at all
    out = reward(comps, completion_ids=ids, solution=sol, problem_type=["multiple_choice"] * 8)
    assert out == [0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
