"""Model builders. Each module registers `build(cfg, n_classes, input_shape, n_heads)`."""
