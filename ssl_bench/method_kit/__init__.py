"""What a method is built from, so that no method repeats another's pieces.

* ``method``: the contract (``Method``, ``View``, ``Batch``, ``StepContext``,
  ``StepOutput``, ``Option``);
* ``steps``: the weak/strong forward pass and step output of the pseudo-labelling
  family (FixMatch, UDA, FlexMatch, FreeMatch, SoftMatch);
* ``losses``: probability and relation consistency (Mean Teacher, SRC-MT, Pi);
* ``pseudo_labels``: confidence, hard and sharpened labels, masked losses, distribution
  alignment;
* ``thresholds``: the confidence statistics and per-class thresholds of FlexMatch,
  FreeMatch and SoftMatch;
* ``mixing``: MixUp, frozen batch-norm statistics and training-signal annealing
  (MixMatch, UDA);
* ``search_space``: what ``ssl-bench tune`` may vary; ``faults``: a method's own exits.
"""
