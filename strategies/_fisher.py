"""The diagonal empirical Fisher that refresh learning and fast/slow weights both accumulate."""
from __future__ import annotations

import torch
from avalanche.models.utils import avalanche_forward


def empirical_fisher(strategy, max_samples: int) -> dict[str, torch.Tensor]:
    """Mean over minibatches of squared gradients of the minibatch-mean loss on the current
    experience's data (at most `max_samples` samples), in eval mode so batch-norm statistics stay
    as they are; the DataLoader gets a private generator so the global RNG is not consumed."""
    model = strategy.model
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    out = {n: torch.zeros_like(p) for n, p in params.items()}
    loader = torch.utils.data.DataLoader(strategy.experience.dataset, batch_size=strategy.train_mb_size,
                                         generator=torch.Generator())
    was_training, seen, batches = model.training, 0, 0
    model.eval()
    try:
        for x, y, t in loader:
            if seen >= max_samples:
                break
            model.zero_grad(set_to_none=True)
            out_logits = avalanche_forward(model, x.to(strategy.device), t.to(strategy.device))
            strategy._criterion(out_logits, y.to(strategy.device)).backward()
            for n, p in params.items():
                if p.grad is not None:
                    out[n] += p.grad.detach() ** 2
            seen, batches = seen + len(y), batches + 1
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return {n: f / max(batches, 1) for n, f in out.items()}
