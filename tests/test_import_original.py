"""import_original.py: checkpoints of the original code, rebuilt here in their own layout (3-channel
input in [0, 1], conv biases, 'linear' head, a 4x4 average pool), must give the same logits after
import, and must then work with this repo's pruning, export and prediction."""
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import export_onnx
import import_original
import prune_cli
import transforms as T
from utils import load_checkpoint

VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


class OriginalVGG(nn.Module):
    """The original layout: conv(bias)+BN+ReLU per entry, 'M' max-pools, AvgPool2d(1, 1), dropout, Linear(512, 7)."""

    def __init__(self, cfg=VGG19):
        super().__init__()
        layers, c = [], 3
        for v in cfg:
            layers += [nn.MaxPool2d(2, 2)] if v == "M" else [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
            c = c if v == "M" else v
        self.features = nn.Sequential(*layers, nn.AvgPool2d(1, 1))
        self.classifier = nn.Linear(512, 7)

    def forward(self, x):  # (B, 3, 44, 44) in [0, 1]
        return self.classifier(F.dropout(self.features(x).flatten(1), 0.5, self.training))


class OriginalBlock(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + self.shortcut(x))


class OriginalResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for s, planes in enumerate((64, 128, 256, 512), start=1):
            blocks = [OriginalBlock(cin, planes, 1 if s == 1 else 2), OriginalBlock(planes, planes, 1)]
            setattr(self, f"layer{s}", nn.Sequential(*blocks))
            cin = planes
        self.linear = nn.Linear(512, 7)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))  # (B, 512, 6, 6)
        return self.linear(F.dropout(F.avg_pool2d(out, 4).flatten(1), 0.5, self.training))


def randomise(net, seed):
    torch.manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            m.bias.data.normal_(0, 0.3)
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("arch,net,prefix", [("VGG19", OriginalVGG, "module."), ("Resnet18", OriginalResNet18, "")],
                         ids=["vgg19-dataparallel", "resnet18"])
def test_imported_logits_equal_the_original_networks(arch, net, prefix, tmp_path):
    original = randomise(net(), 0)
    src = tmp_path / "PrivateTest_model.t7"
    torch.save({"net": {prefix + k: v for k, v in original.state_dict().items()}, "best_PublicTest_acc": 72.6,
                "best_PrivateTest_acc": 73.2, "best_PrivateTest_acc_epoch": 213}, src)
    out = tmp_path / "imported.pth"
    import_original.main([str(src), "--arch", arch, "--out", str(out)])
    ck = load_checkpoint(out)
    assert ck["original_metrics"]["best_PrivateTest_acc"] == pytest.approx(73.2) and ck["epoch"] == 213
    faces = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (6, 1, 44, 44), dtype=np.uint8))
    import models
    ours = models.model_from_checkpoint(ck).eval()
    with torch.no_grad():
        want = original(faces.float().div(255).repeat(1, 3, 1, 1))  # the original's input: ToTensor, 3 channels
        got = ours(T.to_float(faces))  # this repo's input: normalised grey
    assert (want - got).abs().max().item() < 1e-4, (want - got).abs().max().item()

    # and the rest of the repo takes it: pruning (masked == compact) and ONNX export
    report = prune_cli.main(["--checkpoint", str(out), "--percent", "0.3", "--out", str(tmp_path / "pruned"),
                             "--no-eval", "--device", "cpu"], family=arch[:3].replace("Res", "Resnet"))
    assert report["max_abs_diff_masked_vs_compact"] < 1e-3
    pruned = load_checkpoint(tmp_path / "pruned" / "pruned.pth")
    assert pruned["model_args"]["input_affine"] == ck["model_args"]["input_affine"]
    export_onnx.export(ck, str(tmp_path / "m.onnx"))
    import onnxruntime as ort
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = sess.run(None, {"input": T.to_float(faces).numpy()})[0]
    assert np.abs(onnx_out - got.numpy()).max() < 1e-3


def test_a_pickled_module_is_refused_with_how_to_resave(tmp_path, capsys):
    src = tmp_path / "model.t7"
    torch.save({"net": nn.Linear(2, 2), "acc": 50.0}, src)
    with pytest.raises(SystemExit):
        import_original.main([str(src), "--arch", "VGG19", "--out", str(tmp_path / "x.pth")])
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pickled model" in err and "state_dict()" in err
    assert not os.path.exists(tmp_path / "x.pth")


def test_a_state_dict_of_another_network_is_one_error_line(tmp_path, capsys):
    src = tmp_path / "model.t7"
    torch.save({"net": randomise(OriginalResNet18(), 0).state_dict()}, src)
    with pytest.raises(SystemExit):
        import_original.main([str(src), "--arch", "VGG19", "--out", str(tmp_path / "x.pth")])
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "VGG19" in err
    assert not os.path.exists(tmp_path / "x.pth")
