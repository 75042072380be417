"""timm's ``resnet10t`` rebuilt with plain torch.nn, module for module, so the bundled CNN loads without ``timm``.

Why: ``import timm`` imports torchvision.ops and with it torch._dynamo, which costs about as much again as importing
torch - most of a single-image scan's cold start. The modules and their names are timm's (deep-tiered stem, average-
pool downsampling, one BasicBlock per stage), so the same safetensors state dict loads with ``strict=True``;
tests/forensics/test_cnn_resnet.py checks the outputs equal timm's. Other architectures still come from timm.
"""

from __future__ import annotations

from torch import nn


def _bn_conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.drop_block = nn.Identity()
        self.act1 = nn.ReLU(inplace=True)
        self.aa = nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = nn.ReLU(inplace=True)
        pool = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
        self.downsample = nn.Sequential(pool, nn.Conv2d(cin, cout, 1, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        shortcut = self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return self.act2(x + shortcut)


class ResNet10T(nn.Module):
    def __init__(self, in_chans: int = 3, num_classes: int = 1000, channels=(64, 128, 256, 512), stem_width: int = 32):
        super().__init__()
        stem = (3 * (stem_width // 4), stem_width)
        inplanes = stem_width * 2
        self.conv1 = nn.Sequential(
            *_bn_conv(in_chans, stem[0], 2), nn.ReLU(inplace=True),
            *_bn_conv(stem[0], stem[1]), nn.ReLU(inplace=True),
            nn.Conv2d(stem[1], inplanes, 3, 1, 1, bias=False),
        )
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = inplanes
        for i, cout in enumerate(channels):
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, cout, 1 if i == 0 else 2)))
            cin = cout
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3)))
