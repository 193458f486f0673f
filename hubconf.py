"""torch.hub entry points (works offline from a clone):

    model = torch.hub.load("path/to/this/clone", "fer2013_vgg19_slim", source="local")
    model = torch.hub.load("path/to/this/clone", "vgg19", source="local", width=0.25)

``fer2013_vgg19_slim`` is the shipped light model (weights/), in eval mode, with what a caller
needs attached: ``class_names``, ``input_size`` (1, 44, 44: one normalised grey crop) and
``preprocess`` (uint8 faces (N, 1, 48, 48) -> 10 crops (N*10, 1, 44, 44); average the logits of
each face's 10 crops, as evaluation does), ``temperature`` (fitted on PublicTest by calibrate.py;
1 when uncalibrated) and ``predict_proba`` (faces -> calibrated probabilities). The architecture entries are untrained networks of
this repo's models package, taking the same input.
"""
import os

dependencies = ["torch", "numpy"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def _attach(model, class_names, temperature=1.0):
    import torch

    import transforms as T
    model.class_names = list(class_names)
    model.input_size = (1, T.CROP, T.CROP)
    model.preprocess = lambda faces: T.ten_crop(T.to_float(faces), T.CROP).flatten(0, 1)  # (N*10, 1, 44, 44)
    model.temperature = float(temperature)

    def predict_proba(faces):
        """uint8 faces (N, 1, 48, 48) -> calibrated probabilities (N, C): softmax of the 10-crop mean
        logits divided by the temperature fitted on PublicTest (calibrate.py)."""
        with torch.no_grad():
            logits = model(model.preprocess(faces)).view(len(faces), 10, -1).mean(1)
        return torch.softmax(logits / model.temperature, 1)
    model.predict_proba = predict_proba
    return model


def fer2013_vgg19_slim(pretrained=True):
    """The shipped slimmed VGG19 (width 0.25, network-slimmed to about half the MACs, FER2013 classes), eval mode."""
    import models
    from utils import load_checkpoint
    path = os.path.join(_HERE, "weights", "fer2013_vgg19_slim.pth")
    ck = load_checkpoint(path)
    if pretrained:
        model = models.model_from_checkpoint(ck, path)
    else:  # the same architecture, freshly initialised
        model = models.build_model(ck["arch"], cfg=ck["cfg"], num_classes=ck["num_classes"],
                                   in_channels=ck.get("in_channels", 1), **ck.get("model_args", {}))
    temperature = ck.get("calibration", {}).get("temperature", 1.0) if pretrained else 1.0
    return _attach(model.eval(), ck["class_names"], temperature)


def _untrained(arch):
    def entry(num_classes=7, width=1.0):
        import models
        from data_io import FER_CLASSES
        cfg, model_args = models.scaled(arch, width)
        model = models.build_model(arch, cfg=cfg, num_classes=num_classes, **model_args)
        names = FER_CLASSES if num_classes == len(FER_CLASSES) else [f"class {i}" for i in range(num_classes)]
        return _attach(model, names)
    entry.__doc__ = f"An untrained {arch} of this repo (1 grey input channel), ``width`` scales every conv width."
    return entry


vgg11, vgg13, vgg16, vgg19 = (_untrained(a) for a in ("VGG11", "VGG13", "VGG16", "VGG19"))
resnet18, resnet34 = _untrained("Resnet18"), _untrained("Resnet34")
