"""VGG with BatchNorm for 44x44 grey faces, built from a cfg list.

A cfg is a list of conv widths with 'M' for 2x2 max-pooling. Passing an explicit ``cfg``
rebuilds a network-slimmed (pruned) VGG from its checkpoint; ``cfg=None`` gives the
standard widths for ``vgg_name``.
"""
import torch.nn as nn

VGG_CFGS = {
    "VGG11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "VGG13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "VGG16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "VGG19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    def __init__(self, vgg_name="VGG19", cfg=None, num_classes=7, in_channels=1, dropout=0.5):
        super().__init__()
        self.cfg = list(cfg) if cfg is not None else list(VGG_CFGS[vgg_name])
        layers, c = [], in_channels
        for v in self.cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        # 44 -> 22 -> 11 -> 5 -> 2 -> 1 after five pools; adaptive pooling also accepts 48x48 input
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c, num_classes)

    @property
    def model_args(self):
        """Besides arch and cfg, a VGG needs nothing more to be rebuilt."""
        return {}

    def forward(self, x):  # x: (B, in_channels, 44, 44)
        x = self.pool(self.features(x)).flatten(1)  # (B, C_last)
        return self.classifier(self.dropout(x))  # (B, num_classes)
