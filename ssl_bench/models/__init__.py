"""Backbones (any timm architecture), partial freezing and pretrained weights."""
