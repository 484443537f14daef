"""View-batch: the sampler's schedule, the consistency loss, and runs from the CLI."""
import pytest
import torch
from torch.utils.data import DataLoader

from strategies.view_batch import ViewBatchSampler, view_consistency_loss


@pytest.mark.parametrize("views", [2, 4])
def test_over_v_epochs_every_index_appears_v_times_in_contiguous_runs(views):
    n = 40
    seen = torch.zeros(n, dtype=torch.long)
    for epoch in range(views):
        order = list(ViewBatchSampler(n, views, epoch, seed=3))
        assert len(order) == n  # same number of samples, hence iterations, as a plain epoch
        runs = [order[i:i + views] for i in range(0, len(order), views)]
        assert all(len(set(r)) == 1 for r in runs)  # each index repeated V times in a row
        for r in runs:
            seen[r[0]] += views
    assert seen.tolist() == [views] * n


def test_blocks_of_v_epochs_share_a_permutation_and_differ_across_blocks():
    a = [list(ViewBatchSampler(12, 3, e, seed=0)) for e in range(6)]
    first_block = sorted(set(a[0][::3]) | set(a[1][::3]) | set(a[2][::3]))
    assert first_block == list(range(12))
    assert a[0] != a[3]


def test_iterations_per_epoch_equal_the_v1_case():
    data = torch.arange(96)
    plain = DataLoader(data, batch_size=16, sampler=ViewBatchSampler(96, 1, 0))
    viewed = DataLoader(data, batch_size=16, sampler=ViewBatchSampler(96, 4, 0))
    assert len(plain) == len(viewed) == 6


def test_consistency_loss_is_zero_for_identical_views_and_positive_otherwise():
    one = torch.randn(5, 10)
    same = one.repeat_interleave(4, dim=0)
    assert view_consistency_loss(same, 4).item() == pytest.approx(0.0, abs=1e-6)
    assert view_consistency_loss(torch.randn(20, 10), 4).item() > 0


def test_no_gradient_reaches_the_target_view():
    logits = torch.randn(12, 5, requires_grad=True)
    view_consistency_loss(logits, 3).backward()
    grad = logits.grad.view(4, 3, 5)
    assert torch.count_nonzero(grad[:, 0]) == 0
    assert torch.count_nonzero(grad[:, 1:]) > 0


@pytest.mark.parametrize("strategy", ["naive", "replay"])
def test_view_batch_runs_with_strategies(strategy, run_job):
    results = run_job([f"strategy={strategy}", "+addons=view_batch", "addons.view_batch.warmup_epochs=4",
                       "train.epochs=8", "train.batch_size=32"])
    R = results["acc_matrix"]
    assert results["status"] == "completed"
    assert all(R[k][k] > 0.8 for k in range(5))  # every 2-class experience is learned


def test_view_batch_rejects_batch_not_multiple_of_views(run_job):
    with pytest.raises(ValueError, match=r"train.batch_size \(30\) must be a multiple of addons.view_batch.views \(4\)"):
        run_job(["+addons=view_batch", "train.batch_size=30", "train.epochs=1"])


def test_shift_changes_only_views_after_the_first():
    from types import SimpleNamespace

    from strategies.view_batch import ViewBatchPlugin

    x = torch.randn(8, 1, 28, 28)
    x = x[::4].repeat_interleave(4, dim=0)  # 2 groups x 4 identical views
    strategy = SimpleNamespace(mbatch=[x.clone(), None, None])
    ViewBatchPlugin(views=4, shift=2).before_forward(strategy)
    out = strategy.mbatch[0].view(2, 4, 1, 28, 28)
    assert torch.equal(out[:, 0], x.view(2, 4, 1, 28, 28)[:, 0])
    assert not torch.equal(out[:, 1:], x.view(2, 4, 1, 28, 28)[:, 1:])
