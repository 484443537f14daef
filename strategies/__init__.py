"""Continual-learning strategies, one module each, registered with `@register_strategy(name)`.

Builder contract: `build(cfg, model, optimizer, criterion, **common) -> SupervisedTemplate`, where
`common` holds train_mb_size, train_epochs, eval_mb_size, device, plugins and evaluator, set by
the run from the config (never Avalanche's batch-size-1 defaults). `cfg` is the strategy's own
config group, `conf/strategy/<name>.yaml`.

Checkpoint contract: a plugin or template that keeps state from one experience to the next
implements `state_dict()` (tensors and plain containers) and `load_state_dict(state)`; see
`cl_bench/checkpoint.py`.
"""
