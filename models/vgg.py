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
    def __init__(self, vgg_name="VGG19", cfg=None, num_classes=7, in_channels=1, dropout=0.5, input_affine=None):
        super().__init__()
        self.cfg = list(cfg) if cfg is not None else list(VGG_CFGS[vgg_name])
        # (scale, shift) applied to the normalised input first: a network imported from another
        # code base sees the input scaling it was trained with (import_original.py), exactly
        self.input_affine = list(input_affine) if input_affine is not None else None
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
        """Besides arch and cfg, a VGG needs only its input scaling, where it has one."""
        return {} if self.input_affine is None else {"input_affine": self.input_affine}

    # Network slimming (prune.py asks the model; see models/__init__.py, "Slimming protocol")
    def slimming_units(self):
        """Every conv's channels are prunable: its BatchNorm, the conv writing them, and the
        module reading them next (the next conv, or the classifier after the last one)."""
        names = [f"features.{i}" for i, m in enumerate(self.features) if isinstance(m, nn.Conv2d)]
        readers = names[1:] + ["classifier"]
        return [{"label": f"conv{k + 1}", "bn": f"features.{int(conv.split('.')[1]) + 1}", "producer": conv,
                 "consumers": [reader]} for k, (conv, reader) in enumerate(zip(names, readers))]

    def pruned(self, kept):
        """An untrained VGG of the same family with ``kept[i]`` channels in conv i."""
        widths = iter(kept)
        cfg = [v if v == "M" else next(widths) for v in self.cfg]
        return VGG(cfg=cfg, num_classes=self.classifier.out_features, in_channels=self.features[0].in_channels,
                   dropout=self.dropout.p, **self.model_args)

    def forward(self, x):  # x: (B, in_channels, 44, 44)
        if self.input_affine is not None:
            x = x * self.input_affine[0] + self.input_affine[1]
        x = self.pool(self.features(x)).flatten(1)  # (B, C_last)
        return self.classifier(self.dropout(x))  # (B, num_classes)
