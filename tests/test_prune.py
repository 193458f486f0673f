import json
import os

import pytest
import torch

import engine
import fer_vgg_prune
import mainpro_FER
import models
import prune
from conftest import run_script
from utils import load_checkpoint


def randomised(arch, seed=0, width=0.25):
    """A model whose BN scales, shifts and running statistics are all non-trivial."""
    torch.manual_seed(seed)
    m = models.build_model(arch, cfg=models.scale_cfg(models.default_cfg(arch), width))
    for bn in m.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.weight.data.uniform_(0.01, 1.0)
            bn.bias.data.normal_(0, 0.2)
            bn.running_mean.normal_(0, 0.1)
            bn.running_var.uniform_(0.5, 2.0)
    return m.eval()


@pytest.mark.parametrize("arch", ["VGG19", "Resnet18"])
@pytest.mark.parametrize("percent", [0.3, 0.5, 0.7, 0.95])
def test_compact_equals_masked(arch, percent):
    m = randomised(arch)
    bns = prune.prunable_bns(m)
    bns[2].weight.data.mul_(1e-4)  # this layer would be emptied by any ratio above its share
    masks, thr = prune.channel_masks(m, percent, min_channels=4)
    compact = prune.compact_model(m, masks)
    assert prune.max_output_difference(prune.masked_model(m, masks), compact) < 1e-4
    kept = [int(k.sum()) for k in masks]
    assert kept[2] == 4  # held at --min-channels, not emptied
    total = sum(len(k) for k in masks)
    assert sum(kept) <= total - int(total * percent) + 4 * len(masks)
    assert prune.n_params(compact) < prune.n_params(m)
    # the compact net is really smaller: its convs have the kept widths
    widths = [bn.num_features for bn in prune.prunable_bns(compact)]
    assert widths == kept


def test_sparsity_step_adds_exactly_s_sign_gamma():
    m = randomised("VGG11")
    m.train()
    bns = prune.prunable_bns(m)
    bns[0].weight.data[:3] = torch.tensor([-0.5, 0.0, 0.5])
    x, y = torch.randn(4, 1, 44, 44), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(1)
    torch.nn.functional.cross_entropy(m(x), y).backward()
    before = [bn.weight.grad.clone() for bn in bns]
    engine.add_bn_l1_subgradient(m, 1e-3)
    for bn, g in zip(bns, before):
        # bit-exact: the new gradient is the old one plus s * sign(gamma), nothing else
        assert torch.equal(bn.weight.grad, g + 1e-3 * torch.sign(bn.weight.detach()))
    assert bns[0].weight.grad[1] == before[0][1]  # sign(0) = 0: no push at exactly zero


def test_channel_masks_rejects_bad_percent():
    with pytest.raises(ValueError):
        prune.channel_masks(randomised("VGG11"), 1.0)
    with pytest.raises(ValueError):
        prune.channel_masks(randomised("VGG11"), -0.1)


def test_sparsity_train_prune_finetune_end_to_end(synthetic_h5, tmp_path, capsys):
    base = tmp_path / "FER_VGG11"
    mainpro_FER.main(["--data", synthetic_h5, "--out", str(base), "--model", "VGG11", "--width", "0.25",
                      "--device", "cpu", "--recipe", "fast", "--epochs", "3", "--sr", "--s", "1e-3"])
    ck = load_checkpoint(base / "best.pth")
    assert ck["args"]["sr"] and ck["args"]["s"] == 1e-3
    save = tmp_path / "pruned"
    report = prune.main(["--model", str(base / "best.pth"), "--percent", "0.5", "--save", str(save),
                         "--device", "cpu"], family="VGG")
    assert report["ratios"]["params"] > 2 and report["max_abs_diff_masked_vs_compact"] < 1e-4
    assert set(report["accuracy_10crop"]) == {"unpruned", "pruned"}
    assert json.load(open(save / "prune_report.json"))["cfg_after"] == report["cfg_after"]
    pruned = load_checkpoint(save / "pruned.pth")
    net = models.model_from_checkpoint(pruned)  # rebuilds the right shapes from cfg
    assert net.cfg == report["cfg_after"] and prune.n_params(net) == report["pruned"]["params"]
    capsys.readouterr()
    fer_vgg_prune.main(["--model", str(save / "pruned.pth"), "--epochs", "2", "--device", "cpu", "--lr", "0.02"])
    out = capsys.readouterr().out
    assert "pruned + fine-tuned" in out and "fewer parameters" in out
    best = load_checkpoint(save / "best.pth")
    assert best["cfg"] == report["cfg_after"] and os.path.exists(save / "metrics.csv")
    assert best["metrics"]["at_best"]["PublicTest"] > 14.3  # learns beyond chance after pruning
    # prune again from an already pruned checkpoint
    again = prune.main(["--model", str(save / "best.pth"), "--percent", "0.3", "--save", str(tmp_path / "p2"),
                        "--no-eval"], family="VGG")
    assert sum(l["total"] for l in again["layers"]) == sum(l["kept"] for l in report["layers"])


def test_prune_bad_inputs(tmp_path):
    m = models.build_model("Resnet18", cfg=models.scale_cfg(models.default_cfg("Resnet18"), 0.25))
    torch.save({"arch": "Resnet18", "cfg": m.cfg, "num_classes": 7, "net": m.state_dict()}, tmp_path / "r.pth")
    cases = [
        (["--model", str(tmp_path / "r.pth")], "holds a Resnet18, not a VGG: use prune_resnet.py"),
        (["--model", str(tmp_path / "nope.pth")], "not found"),
        (["--model", str(tmp_path / "r.pth"), "--percent", "1.2"], "--percent 1.2"),
    ]
    for extra, msg in cases:
        r = run_script("prune_vgg.py", *extra, "--no-eval", "--save", str(tmp_path / "out"))
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip().count("\n") == 0
    r = run_script("prune_resnet.py", "--model", str(tmp_path / "r.pth"), "--no-eval", "--save", str(tmp_path / "rp"))
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(tmp_path / "rp" / "pruned.pth")["arch"] == "Resnet18"
