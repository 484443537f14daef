"""What a strategy holds in memory besides the model: optimizer state (momentum, CLASSP's
accumulators), plugin state (EWC importances and anchors, LwF's previous model, replay buffers,
refresh's Fisher). Reported per run so methods can be compared on memory, not only accuracy."""
from __future__ import annotations

import torch
from avalanche.benchmarks.utils import AvalancheDataset
from avalanche.training.plugins import EvaluationPlugin

from cl_bench.evaluation.continual import ContinualEvaluationPlugin
from cl_bench.midway import LoggedIterator, MidwayCheckpoints

# Bookkeeping that is not the method's own memory.
_NOT_STATE = (EvaluationPlugin, ContinualEvaluationPlugin, MidwayCheckpoints)


def _bytes(obj, seen: set, depth: int = 0) -> int:
    if depth > 6 or id(obj) in seen or isinstance(obj, LoggedIterator):  # a fetch log is bookkeeping
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, torch.nn.Module):
        return sum(_bytes(t, seen) for t in [*obj.parameters(), *obj.buffers()])
    if isinstance(obj, AvalancheDataset):
        # buffers index into the experience data; what they hold is one input per stored sample
        return len(obj) * _bytes(obj[0][0], set()) if len(obj) else 0
    if isinstance(obj, dict):
        return sum(_bytes(v, seen, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple, set)):
        return sum(_bytes(v, seen, depth + 1) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, (type, torch.optim.Optimizer)):
        return sum(_bytes(v, seen, depth + 1) for v in vars(obj).values())
    return 0


def held_memory_bytes(strategy) -> dict:
    seen = {id(strategy.model)}
    seen.update(id(p) for p in strategy.model.parameters())
    optimizer = sum(_bytes(s, seen) for s in strategy.optimizer.state.values())
    plugins = {}
    for plugin in strategy.plugins:
        if isinstance(plugin, _NOT_STATE) or type(plugin).__name__ == "Clock":
            continue
        held = _bytes(plugin, seen)
        if held:
            plugins[type(plugin).__name__] = held
    return {"optimizer_state": optimizer, "plugins": plugins, "total": optimizer + sum(plugins.values())}
