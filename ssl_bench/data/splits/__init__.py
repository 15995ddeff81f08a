"""One split generator for every data set: train/val/test parts plus a labeled subset.

Parts
    ``make_split`` cuts the images into train/val/test by ``ratios`` (default 0.7/0.1/0.2).
    Evaluation parts the data set defines itself (``dataset.predefined``, e.g. an official
    test set) are used as they are; the other images form the *pool*, and the parts that
    are missing are carved from it with the ratios rescaled (an official test part leaves
    train:val = 0.7:0.1, i.e. 7/8 and 1/8 of the pool). ``Split.eval_parts`` records which
    part is ``"official"``, ``"carved"`` or ``"none"`` (ratio 0). The test part is carved
    first, then the validation part from what is left; the rest is the training part.

Stratification
    Each carve works on *units*: single images, or whole groups (patients, lesions) when
    ``grouped`` is on and the data set has ``groups`` -- then every group lies in exactly
    one part.

    * Single-label: each unit gets one class (an image its label; a group its most
      frequent label, ties going to the rarer class). Every class is a stratum whose image
      quota is its share of the part (largest-remainder rounding, so the quotas add up to
      the part's size); in each stratum the units are shuffled and the shortest prefix
      whose image count is closest to the quota goes to the part. Image counts per class
      therefore follow the ratios even when groups hold different numbers of images.
    * Multi-label: iterative stratification (Sechidis et al. 2011) from the maintained
      ``iterative-stratification`` package (``MultilabelStratifiedShuffleSplit``) on the
      unit table: image labels, or a group's OR of its images' labels. For groups, binary
      columns "holds at least 2, 4, 8, ... images" and "holds at least 2, 4, 8, ... images
      positive for class k" are stratified as well, so big and small groups spread evenly
      and image counts per class, not only group counts, follow the ratios.
    * Classes with fewer than two units in the pool cannot be stratified: single-label
      ones are pooled into one unstratified stratum, multi-label ones simply land in one
      part; either way a warning names them.

Labeled subsets
    are *nested* for a seed: the training part is put in one seeded order whose first
    images cover every class present in training (rarest first for multi-label) and whose
    every prefix is near-stratified (classes interleave in proportion; multi-label images
    are stratified by their rarest positive class); the labeled set is a prefix of it, so
    the 5% set lies inside the 10% set inside the 20% set. Train/val/test never depend on
    the labeled fraction.

Split files
    ``save_split`` writes a self-describing JSON file (format version, data set name and
    fingerprint, seed, ratios, grouping, labeled spec, evaluation parts, sizes, class and
    group counts, and the ids of every part); ``load_split`` validates one and
    ``check_split`` checks it against a data set.
"""

from ssl_bench.data.labeled import labeled_tag, parse_labeled
from ssl_bench.data.splits.files import check_split, load_split, save_split
from ssl_bench.data.splits.generator import make_split
from ssl_bench.data.splits.nested import nested_labeled_order
from ssl_bench.data.splits.record import (
    DEFAULT_RATIOS,
    EVAL_ORIGINS,
    EVAL_PARTS,
    FORMAT_VERSION,
    PART_NAMES,
    Split,
)

__all__ = [
    "DEFAULT_RATIOS", "EVAL_ORIGINS", "EVAL_PARTS", "FORMAT_VERSION", "PART_NAMES", "Split",
    "check_split", "labeled_tag", "load_split", "make_split", "nested_labeled_order",
    "parse_labeled", "save_split",
]
