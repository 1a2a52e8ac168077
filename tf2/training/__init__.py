"""Training: NT-Xent, LARS and optimizers, schedules, the per-replica step, the loop, checkpoints, progress."""
