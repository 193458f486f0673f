"""CIFAR-style ResNet18 with BatchNorm (3x3 stem, no stem max-pool) for 44x44 grey faces.

``cfg`` lists the inner width of each BasicBlock (the channels between its two convs), the
only widths network slimming changes. ``planes`` are the residual widths of the stem and the four
stages (64/128/256/512 by default; ``models.scaled`` narrows them for a CPU-sized net);
pruning keeps them, so the shortcut additions stay consistent. ``cfg=None`` is the unpruned
network: every inner width equals its stage's width.
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


def default_cfg(name="Resnet18", planes=STAGE_WIDTHS):
    return [w for w, n in zip(planes, BLOCKS_PER_STAGE[name], strict=True) for _ in range(n)]


class ResNet(nn.Module):
    def __init__(self, name="Resnet18", cfg=None, num_classes=7, in_channels=1, dropout=0.5, planes=None,
                 input_affine=None, pool_window=None):
        super().__init__()
        # for networks imported from the original code (import_original.py): its input scaling, and
        # its head's fixed 4x4 average pool (on a 6x6 map it sees only the top-left 4x4 corner)
        self.input_affine = list(input_affine) if input_affine is not None else None
        self.pool_window = pool_window
        self.name = name
        blocks = BLOCKS_PER_STAGE[name]
        self.planes = list(planes) if planes is not None else list(STAGE_WIDTHS)
        if len(self.planes) != 4 or min(self.planes) < 1:
            raise ValueError(f"{name} planes needs 4 positive stage widths, got {self.planes}")
        self.cfg = list(cfg) if cfg is not None else default_cfg(name, self.planes)
        if len(self.cfg) != sum(blocks):
            raise ValueError(f"{name} cfg needs {sum(blocks)} inner widths, got {len(self.cfg)}")
        self.conv1 = nn.Conv2d(in_channels, self.planes[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.planes[0])
        layers, in_planes, i = [], self.planes[0], 0
        for stage, (planes, n) in enumerate(zip(self.planes, blocks)):
            for j in range(n):
                stride = 2 if (stage > 0 and j == 0) else 1
                layers.append(BasicBlock(in_planes, self.cfg[i], planes, stride))
                in_planes, i = planes, i + 1
        self.layers = nn.Sequential(*layers)  # 44 -> 44 -> 22 -> 11 -> 6
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.planes[-1], num_classes)

    @property
    def model_args(self):
        """What a checkpoint must carry, besides arch and cfg, to rebuild this network."""
        extra = {k: v for k, v in (("input_affine", self.input_affine), ("pool_window", self.pool_window))
                 if v is not None}
        return {"planes": self.planes, **extra}

    # Network slimming (prune.py asks the model; see models/__init__.py, "Slimming protocol")
    def slimming_units(self):
        """Only each block's inner channels (conv1 -> bn1 -> conv2) are prunable: every other width
        is tied to a residual sum."""
        return [{"label": f"block{i + 1}.inner", "bn": f"layers.{i}.bn1", "producer": f"layers.{i}.conv1",
                 "consumers": [f"layers.{i}.conv2"]} for i in range(len(self.layers))]

    def pruned(self, kept):
        """An untrained ResNet of the same depth and stage widths with the given inner widths."""
        return ResNet(self.name, cfg=list(kept), num_classes=self.classifier.out_features,
                      in_channels=self.conv1.in_channels, dropout=self.dropout.p, **self.model_args)

    def forward(self, x):  # x: (B, in_channels, 44, 44)
        if self.input_affine is not None:
            x = x * self.input_affine[0] + self.input_affine[1]
        x = self.layers(F.relu(self.bn1(self.conv1(x))))  # (B, planes[-1], 6, 6)
        x = (self.pool(x) if self.pool_window is None else F.avg_pool2d(x, self.pool_window)).flatten(1)
        return self.classifier(self.dropout(x))
