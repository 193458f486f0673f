"""Model registry: the names users type (VGG19, Resnet18, ...) -> constructors.

Every constructor takes ``cfg=None, num_classes=7, in_channels=1`` so a pruned network is
rebuilt from the ``arch``, ``cfg`` and ``model_args`` (ResNet: its stage widths) stored in its
checkpoint.

Slimming protocol: an architecture that network slimming (prune.py) can cut says where its
channels may be removed, so adding one touches only this package (``register``):

    model.slimming_units() -> [{"label": "conv3",          # for reports
                                "bn": "features.7",         # BatchNorm2d whose scales are pulled and thresholded
                                "producer": "features.6",   # conv whose output channels those are
                                "consumers": ["features.9"]}, ...]  # convs / linears reading them as inputs
    model.pruned(kept) -> an untrained model of the same family with kept[i] channels in unit i

Module names are those of ``named_modules()``; the pruned model must use the same names.
"""
from functools import partial

import torch
import torch.nn as nn

from data_io import DataError

from .resnet import ResNet
from .vgg import VGG, VGG_CFGS

MODELS = {name: partial(VGG, name) for name in VGG_CFGS}
MODELS.update({"Resnet18": partial(ResNet, "Resnet18"), "Resnet34": partial(ResNet, "Resnet34")})


def register(name, constructor):
    """Make ``constructor(cfg=None, num_classes=7, in_channels=1, **model_args)`` known as ``name``."""
    MODELS[name] = constructor


def canonical_name(name):
    """Map any spelling (vgg19, ResNet18) to the registry's name; raise ValueError otherwise."""
    for key in MODELS:
        if key.lower() == str(name).lower():
            return key
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def default_cfg(arch):
    return build_model(arch).cfg


def scale_cfg(cfg, width):
    """Multiply every conv width of a cfg by ``width`` (a narrow net for CPU runs); 'M' stays."""
    return [v if v == "M" else max(1, int(round(v * width))) for v in cfg]


def scaled(arch, width):
    """(cfg, model_args) of ``arch`` with every width scaled: VGG's convs; ResNet's stem, stages,
    shortcuts and block interiors alike, so width 0.25 is about a sixteenth of the parameters."""
    base = build_model(arch)
    if width == 1:
        return None, {}
    if isinstance(base, ResNet):
        planes = scale_cfg(base.planes, width)
        return scale_cfg(base.cfg, width), {"planes": planes}
    return scale_cfg(base.cfg, width), {}


def build_model(arch, cfg=None, num_classes=7, in_channels=1, **model_args):
    return MODELS[canonical_name(arch)](cfg=cfg, num_classes=num_classes, in_channels=in_channels, **model_args)


def model_from_checkpoint(ckpt, source="checkpoint"):
    """Rebuild the network stored in one of our checkpoint dicts and load its weights.

    ``source`` names the checkpoint (its file) in the one-line DataError raised when the stored
    architecture cannot be built or its weights do not fit it (a cfg edited by hand, a file
    from another program), instead of load_state_dict's many-line RuntimeError.
    """
    arch, cfg = ckpt.get("arch"), ckpt.get("cfg")
    try:
        model = build_model(arch, cfg=cfg, num_classes=ckpt["num_classes"], in_channels=ckpt.get("in_channels", 1),
                            **ckpt.get("model_args", {}))
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise DataError(f"{source}: cannot rebuild its {arch} with cfg {cfg} ({type(e).__name__}: {e})") from None
    try:
        model.load_state_dict(ckpt["net"])
    except RuntimeError as e:
        # the first 'size mismatch for <tensor>: ...' / 'Missing key(s) ...' line names the tensor
        detail = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))
        raise DataError(f"{source}: its weights do not fit its {arch} cfg {cfg}: {detail}") from None
    return model


class Ensemble(nn.Module):
    """The mean of several trained networks' logits, (B, C) from (B, 1, 44, 44): a stronger
    distillation teacher than any one of them, and an accuracy row of its own."""

    def __init__(self, nets):
        super().__init__()
        self.nets = nn.ModuleList(nets)

    @property
    def classifier(self):  # what code that asks a model for its class count reads
        return self.nets[0].classifier

    def forward(self, x):
        return torch.stack([net(x).float() for net in self.nets]).mean(0)


def teacher_from_checkpoints(paths, class_names=None):
    """(eval-mode network without gradients, its checkpoints) from one checkpoint or the Ensemble of
    several; every one must have ``class_names`` (and the first one's), else DataError."""
    from utils import check_classes, load_checkpoint
    nets, cks = [], []
    for path in paths:
        ck = load_checkpoint(path)
        want = class_names if class_names is not None else (cks[0]["class_names"] if cks else ck["class_names"])
        check_classes(ck["class_names"], f"--teacher {path}", want, "the student" if class_names else paths[0])
        nets.append(model_from_checkpoint(ck, path))
        cks.append(ck)
    net = nets[0] if len(nets) == 1 else Ensemble(nets)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, cks


__all__ = ["Ensemble", "MODELS", "VGG", "ResNet", "build_model", "canonical_name", "default_cfg",
           "model_from_checkpoint", "register", "scale_cfg", "scaled", "teacher_from_checkpoints"]
