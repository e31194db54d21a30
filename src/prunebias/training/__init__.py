"""Training: architectures, augmentation, masks, sparsity schedules, the training loop, devices."""
