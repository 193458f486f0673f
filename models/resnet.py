"""CIFAR-style ResNet18 with BatchNorm (3x3 stem, no stem max-pool) for 44x44 grey faces.

``cfg`` lists the inner width of each BasicBlock (the channels between its two convs), the
only widths network slimming changes; the residual widths (64/128/256/512) stay fixed so the
shortcut additions remain consistent. ``cfg=None`` is the unpruned network.
"""
import torch.nn as nn
import torch.nn.functional as F

STAGE_WIDTHS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = {"Resnet18": (2, 2, 2, 2), "Resnet34": (3, 4, 6, 3)}


class BasicBlock(nn.Module):
    def __init__(self, in_planes, mid_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, mid_planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_planes)
        self.conv2 = nn.Conv2d(mid_planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def default_cfg(name="Resnet18"):
    return [w for w, n in zip(STAGE_WIDTHS, BLOCKS_PER_STAGE[name]) for _ in range(n)]


class ResNet(nn.Module):
    def __init__(self, name="Resnet18", cfg=None, num_classes=7, in_channels=1, dropout=0.5):
        super().__init__()
        blocks = BLOCKS_PER_STAGE[name]
        self.cfg = list(cfg) if cfg is not None else default_cfg(name)
        if len(self.cfg) != sum(blocks):
            raise ValueError(f"{name} cfg needs {sum(blocks)} inner widths, got {len(self.cfg)}")
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers, in_planes, i = [], 64, 0
        for stage, (planes, n) in enumerate(zip(STAGE_WIDTHS, blocks)):
            for j in range(n):
                stride = 2 if (stage > 0 and j == 0) else 1
                layers.append(BasicBlock(in_planes, self.cfg[i], planes, stride))
                in_planes, i = planes, i + 1
        self.layers = nn.Sequential(*layers)  # 44 -> 44 -> 22 -> 11 -> 6
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x):  # x: (B, in_channels, 44, 44)
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.pool(self.layers(x)).flatten(1)  # (B, 512)
        return self.classifier(self.dropout(x))
