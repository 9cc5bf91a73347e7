"""Training machinery: the generic trainer, checkpoints, logging."""
