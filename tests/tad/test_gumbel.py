import torch

from kfgrpo.tad import gumbel_topk, plackett_luce_log_prob, relaxed_topk


def _sequential(scores, order, tau):
    logits = scores / tau
    remaining = torch.ones_like(logits, dtype=torch.bool)
    total = 0.0
    for idx in order.tolist():
        total = total + torch.log_softmax(logits.masked_fill(~remaining, float("-inf")), dim=-1)[idx]
        remaining[idx] = False
    return total


def test_plackett_luce_equals_sequential_log_softmax_with_finite_gradients():
    gen = torch.Generator().manual_seed(0)
    for tau in (1.0, 0.1, 0.01):
        scores = torch.rand(20, generator=gen, dtype=torch.float64).requires_grad_()
        order, logp = gumbel_topk(scores, 6, tau=tau, generator=gen)
        assert len(set(order.tolist())) == 6
        assert torch.allclose(logp, _sequential(scores, order, tau), atol=1e-9)
        logp.backward()
        assert torch.isfinite(scores.grad).all()
        assert logp.item() <= 0.0


def test_gumbel_topk_samples_follow_the_softmax():
    scores = torch.tensor([2.0, 1.0, 0.0, -1.0], dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    firsts = torch.stack([gumbel_topk(scores, 2, 1.0, gen)[0][0] for _ in range(4000)])
    freq = torch.bincount(firsts, minlength=4).double() / 4000
    assert torch.allclose(freq, torch.softmax(scores, 0), atol=0.03)


def test_plackett_luce_full_orders_sum_to_one():
    import itertools

    scores = torch.tensor([0.3, -0.2, 1.1], dtype=torch.float64)
    total = sum(
        torch.exp(plackett_luce_log_prob(scores, torch.tensor(p), 0.5)) for p in itertools.permutations(range(3))
    )
    assert abs(total.item() - 1.0) < 1e-9


def test_relaxed_topk_is_k_hot_with_straight_through_gradient():
    scores = torch.randn(12, generator=torch.Generator().manual_seed(2)).requires_grad_()
    mask = relaxed_topk(scores, 3, tau=0.5, generator=torch.Generator().manual_seed(3))
    hard = mask.detach()
    assert torch.allclose(hard, hard.round(), atol=1e-5) and torch.allclose(hard.sum(), torch.tensor(3.0))
    (mask * torch.arange(12.0)).sum().backward()
    assert torch.isfinite(scores.grad).all() and scores.grad.abs().sum() > 0
