"""What a method is built from: the ``Method`` contract, its search space and the
pieces methods share (losses, pseudo-labels, thresholds, mixing)."""
