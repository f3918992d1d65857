"""Training: U-Net, Dice+CE with deep supervision, patch sampling, augmentation, checkpoints."""
