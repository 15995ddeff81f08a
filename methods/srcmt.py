"""SRC-MT: Mean Teacher plus sample relation consistency.

Liu, Yu, Chen, Heng, Dou, "Semi-supervised Medical Image Classification with
Relation-driven Self-ensembling Model", IEEE TMI 39(11), 2020.

For the batch's pooled features ``A`` (B x D), the relation matrix is ``G = A A^T`` with
each row L2-normalised. The student's relation matrix on its view must match the
teacher's on the other view::

    total = supervised + lambda(t) * (consistency + relation_weight * relation)
    relation = sum((G_student - G_teacher)^2) / B

It is :class:`~ssl_bench.methods.mt.MeanTeacher` with the relation term as its one extra
consistency term (``extra_terms``): the forward passes, the supervised loss and the
probability consistency are Mean Teacher's own.

Checked line by line against the official code (github.com/liuquande/SRC-MT:
``code/train_SRC_MT.py``, ``code/utils/losses.py``, ``code/dataloaders/dataset.py``,
``code/networks/models.py``). The same:

- the relation loss (bit-identical in float32) and the consistency, both
  ``sum(...) / B`` over the whole batch (labeled + unlabeled); features are the pooled
  backbone features *after* the classifier's dropout, as the official DenseNet-121
  wrapper stores them; dropout only before the classifier (the official dense-layer
  dropout is commented out);
- ``total = CE + lambda * (consistency + relation_weight * relation)``, lambda the sigmoid
  ramp-up ``exp(-5 (1 - t/T)^2)``; EMA decay ``min(1 - 1/(step+1), 0.99)`` over
  parameters only -- the teacher keeps the batch-norm statistics of its own train-mode
  forwards (``--teacher-buffers own``); the teacher runs in train mode without gradients;
- Adam (0.9, 0.999), learning rate 1e-4, weight decay 5e-4; batch 48 with 12 labeled;
  resize to 224 px (bilinear), random affine (10 degrees, 2% shift, zero fill) and
  horizontal flip, drawn independently for student and teacher; ImageNet normalisation.

The official protocol as settings (all in the ``paper`` preset; the ``cpu`` preset keeps
the defaults):

=======================================  ==============================  ===============
official behaviour                       setting (paper value)           default
=======================================  ==============================  ===============
teacher keeps its own BN statistics      --teacher-buffers own           own
lr *= 0.9 after every epoch              --lr-schedule exponential,      constant
                                         --lr-decay 0.9
unsupervised loss only when epoch > 20   --unsupervised-start 21         0
lambda from the epoch number, T = 30     --rampup-per-epoch true,        false, 0.3
                                         --rampup 0.3 (of 100 epochs)
epoch = labeled images // 12 steps       --epoch-length labeled          train
CE weighted by 10000 / n_c               --class-weights                 none
                                         inverse_frequency
consistency weighted by 10000 / n_c      --consistency-class-weights     none
                                         inverse_frequency
torchvision's DenseNet-121 weights       --backbone densenet121.tv_in1k  resnet10t
baseline: the same 48-image batch, loss  --supervised-batch two-stream   labeled
on its 12 labeled images
the student is reported                  --report-model student          best
=======================================  ==============================  ===============

Where we differ, and why:

- class weights are counted on the run's *labeled training* images (N / n_c); the
  official ``CLASS_NUM`` counts all 10,015 HAM10000 images, test images included. CE
  weights cancel in the weighted mean; consistency weights keep the official scale.
- the labeled subset is stratified and nested per seed (every class present); the
  official code takes the first 1,400 rows of its training CSV. The split is grouped by
  lesion by default; ``--split-mode paper`` gives the paper's ungrouped 7:1:2 split, but
  still stratified where the official split was plain random.
- an epoch's batches: the official sampler walks the labeled set once per epoch and
  drops the last partial batch; ours walks it continuously across epoch boundaries.
- ramp-up length: ``--rampup`` is a fraction of training (0.3 x 100 epochs = the
  official 30 epochs); with another number of epochs it scales, the official 30 does not.
- the reported model is chosen on validation only (its best-validation step); the
  official code logs test metrics every epoch and selects nothing.
- the official code applies softmax before a cross-entropy that applies it again
  (double softmax); we apply cross-entropy to raw logits once (``Task.supervised_loss``).
- the official evaluation thresholds probabilities at 0.18 for accuracy/F1; we report
  threshold-free AUC plus argmax metrics (single-label).
- the official ISIC loader drops the CSV's last column (``iloc[:, 1:-1]``); our loaders
  select class columns by name and fail loudly on anything missing.
- the affine perturbation resamples bilinearly (one batched ``grid_sample`` on the
  device); torchvision's ``RandomAffine`` on PIL images uses nearest neighbour.
- batch-norm statistics come from one 48-image batch; the official code runs
  ``DataParallel`` on 3 GPUs, so each 16-image chunk is normalised on its own (the
  relation matrix still spans the gathered 48 rows, as ours).
- on CUDA the forward passes run under bf16 autocast (``--amp false`` for fp32, as the
  official code); losses are computed in float32 either way.

Several processes (``torchrun``, DDP): each rank forwards its shard of the batch, but the
relation matrix must span the whole batch, as the official code's did (``DataParallel``
computes the loss on all GPUs' outputs together). Student and teacher features are
gathered from every rank (``ssl_bench.core.distributed.gather_rows``, an autograd-aware
all-gather whose backward returns each rank the gradient of its own rows), so every rank
computes the B x B relation loss of the global B and DDP's gradient average is exactly its
gradient; this is what keeps SRC-MT faithful under DDP (``tests/test_distributed.py``
checks it against one process on the same global batch). The consistency term is a
per-row ``sum / B`` and needs no gathering.

ChestX-ray14: the official repository has no runnable training code for it (its loader
returns 3-tuples where the training script unpacks 4, and the 7-class weights cannot
broadcast to 14 classes), so ``benchmarks/paper-chestxray14.toml`` is this project's own
design: the paper's settings without class weights, multi-label sigmoid + BCE.
"""

from __future__ import annotations

import torch

from ssl_bench.core.distributed import gather_rows
from ssl_bench.method_kit.losses import relation_consistency
from ssl_bench.method_kit.method import Option
from ssl_bench.method_kit.search_space import CONSISTENCY_WEIGHT, Float
from ssl_bench.methods.mt import MeanTeacher
from ssl_bench.plugins.registry import register_method


@register_method("srcmt", aliases=("src-mt",))
class SRCMT(MeanTeacher):
    summary = "SRC-MT: Mean Teacher + sample relation consistency (Liu et al., TMI 2020)"
    search_space = {"consistency_weight": CONSISTENCY_WEIGHT,
                    "relation_weight": Float(0.1, 10.0, log=True)}
    options = (
        Option("relation_weight", float, 1.0, "weight of the relation consistency term"),
    )

    def extra_terms(self, features: torch.Tensor, teacher_features: torch.Tensor
                    ) -> dict[str, tuple[torch.Tensor, float]]:
        # The relation matrix spans the global batch on several processes (see docstring).
        relation = relation_consistency(gather_rows(features), gather_rows(teacher_features))
        return {"relation": (relation, self.relation_weight)}
