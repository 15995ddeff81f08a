"""Foundations with no knowledge of SSL: errors, atomic writes, interrupts, threads,
provenance, progress display and torch.distributed plumbing."""
