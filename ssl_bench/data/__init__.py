"""From files to batches: data sets, splits, decoded-image cache, labeled amounts, task
kinds, perturbations and augmentations."""
