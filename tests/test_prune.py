import argparse
import json
import os

import pytest
import torch

import config
import engine
import fer_vgg_prune
import mainpro_FER
import models
import prune
import prune_cli
from conftest import run_script
from utils import load_checkpoint


def randomised(arch, seed=0, width=0.25):
    """A model whose BN scales, shifts and running statistics are all non-trivial."""
    torch.manual_seed(seed)
    cfg, model_args = models.scaled(arch, width)
    m = models.build_model(arch, cfg=cfg, **model_args)
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
    assert prune.max_output_difference(prune.masked_model(m, masks), compact) < 1e-9
    assert all(p.dtype == torch.float32 for p in compact.parameters())  # the check worked on copies
    broken = prune.compact_model(m, masks)
    broken.classifier.weight.data.mul_(1.1)  # a wrong copy: the check must see it
    assert prune.max_output_difference(prune.masked_model(m, masks), broken) > 1e-3
    kept = [int(k.sum()) for k in masks]
    assert kept[2] == 4  # held at --min-channels, not emptied
    total = sum(len(k) for k in masks)
    assert sum(kept) <= total - int(total * percent) + 4 * len(masks)
    assert prune.n_params(compact) < prune.n_params(m)
    # the compact net is really smaller: its convs have the kept widths
    widths = [bn.num_features for bn in prune.prunable_bns(compact)]
    assert widths == kept


@pytest.mark.parametrize("arch", ["VGG19", "Resnet18"])
def test_layer_table_macs(arch):
    """Per-layer MACs: a producing conv's count is its output size x its fan-in, and pruning a layer's
    channels shrinks its own conv and the next one's input."""
    m = randomised(arch)
    masks, _ = prune.channel_masks(m, 0.5, min_channels=4)
    compact = prune.compact_model(m, masks)
    rows = prune.layer_table(m, masks, compact)
    assert [r["kept"] for r in rows] == [int(k.sum()) for k in masks]
    conv = prune.producing_convs(m)[0]
    side = 44  # the first producing conv keeps the input's 44x44 (stride 1, padding 1)
    assert rows[0]["macs"] == side * side * conv.out_channels * conv.in_channels * 9
    assert sum(r["macs"] for r in rows) < prune.count_macs(m)  # the rest: unprunable convs, classifier
    for r, keep in zip(rows, masks):
        assert r["macs_pruned"] <= r["macs"] * int(keep.sum()) / len(keep) + 1e-6
        assert r["median_abs_gamma"] >= 0
    base = {"arch": arch, "percent": 0.5, "threshold": 0.1, "min_channels": 4, "layers": rows,
            "unpruned": {"params": 1, "macs": prune.count_macs(m), "weights_mb": 1.0},
            "pruned": {"params": 1, "macs": 1, "weights_mb": 1.0},
            "ratios": {"params": 1.0, "macs": 1.0, "weights_mb": 1.0}, "accuracy_10crop": {},
            "abs_gamma": [[1.0]], "max_abs_diff_masked_vs_compact": 0.0}
    text = prune_cli.format_report(base)
    assert "median |gamma|" in text and f"{rows[0]['macs']:,d}" in text
    # half the channels cut from a parent whose scales were never pulled towards zero: the report says so;
    # a sparse parent (a third of its scales near zero) gets no warning
    dense = prune_cli.format_report({**base, "abs_gamma": [[0.2, 0.3, 0.5] * 10]})
    sparse = prune_cli.format_report({**base, "abs_gamma": [[0.001, 0.3, 0.5] * 10]})
    assert "warning: 50% of the channels removed but no scale is near zero" in dense and "warning" not in sparse


def test_sparsity_step_adds_exactly_s_sign_gamma():
    m = randomised("VGG11")
    m.train()
    bns = prune.prunable_bns(m)
    bns[0].weight.data[:3] = torch.tensor([-0.5, 0.0, 0.5])
    x, y = torch.randn(4, 1, 44, 44), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(1)
    torch.nn.functional.cross_entropy(m(x), y).backward()
    before = [bn.weight.grad.clone() for bn in bns]
    prune.add_bn_l1_subgradient([bn.weight for bn in bns], 1e-3)
    for bn, g in zip(bns, before):
        # bit-exact: the new gradient is the old one plus s * sign(gamma), nothing else
        assert torch.equal(bn.weight.grad, g + 1e-3 * torch.sign(bn.weight.detach()))
    assert bns[0].weight.grad[1] == before[0][1]  # sign(0) = 0: no push at exactly zero


def test_l1_only_on_prunable_scales_resnet(tmp_path):
    """ResNet18: the stem, second and shortcut BatchNorms can never be pruned, so --sr leaves them alone."""
    m = models.build_model("Resnet18", cfg=models.scale_cfg(models.default_cfg("Resnet18"), 0.25))
    m.train()
    x, y = torch.randn(4, 1, 44, 44), torch.tensor([0, 1, 2, 3])
    torch.nn.functional.cross_entropy(m(x), y).backward()
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    before = {id(bn): bn.weight.grad.clone() for bn in bns}
    prunable = {id(bn) for bn in prune.prunable_bns(m)}
    assert 0 < len(prunable) < len(bns)
    prune.add_bn_l1_subgradient([bn.weight for bn in prune.prunable_bns(m)], 1e-2)
    for bn in bns:
        changed = not torch.equal(bn.weight.grad, before[id(bn)])
        assert changed == (id(bn) in prunable)


@pytest.mark.parametrize("schedule,zero_at,momentum,wd", [("onecycle", 0.5, 0.9, 5e-4), ("cosine", 0.75, 0.9, 5e-4),
                                                           ("step", 1.0, 0.0, 1e-4), ("cosine", 0.5, 0.9, 0.0)])
def test_auto_sparsity_zeroes_an_undefended_scale_on_schedule(schedule, zero_at, momentum, wd):
    """--s auto: torch's own SGD, with only weight decay and the L1 term acting on a scale, takes it
    from 1 to zero at the asked fraction of the run, on any schedule."""
    args = argparse.Namespace(**dict(config.PUBLISHED_FER, schedule=schedule, epochs=20, lr=0.05,
                                            decay_start=5, decay_every=2, momentum=momentum, wd=wd))
    steps = 50
    factor = engine.lr_factor(args, steps)
    plan = prune.sparsity_plan("auto", zero_at, args.lr, factor, args.epochs * steps, wd, momentum)
    gamma = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([gamma], lr=args.lr, momentum=momentum, weight_decay=wd)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    total = args.epochs * steps
    seen = {}
    for t in range(1, total + 1):
        gamma.grad = torch.zeros(1)
        prune.add_bn_l1_subgradient([gamma], plan["s"])
        opt.step()
        sched.step()
        seen[t] = gamma.item()
    # momentum's first steps lag by ~lr*m/(1-m)^2, leaving at most ~2% of the start at zero_at
    assert abs(seen[int(zero_at * total)]) < 0.03, (seen[int(zero_at * total)], plan)
    assert seen[int((zero_at - 0.1) * total)] > 0.05  # not there early
    assert abs(seen[total]) < 0.01
    assert plan["l1_pull"] == pytest.approx(plan["s"] * plan["lr_sum"])
    assert plan["unaided_scale_at_end"] == 0.0


def test_unaided_scale_matches_the_calibration_threshold():
    """The 10-epoch s=1e-3 calibration run on the real data (BENCHMARKS.md) pruned at threshold 0.247:
    the median scale had no say in the loss and ended where weight decay and L1 alone leave it."""
    args = argparse.Namespace(**dict(config.PUBLISHED_FER, schedule="onecycle", lr=0.05, epochs=10))
    steps = -(-28709 // 128)
    plan = prune.sparsity_plan(1e-3, None, args.lr, engine.lr_factor(args, steps), 10 * steps, 5e-4, 0.9)
    assert plan["unaided_scale_at_end"] == pytest.approx(0.247, abs=0.01)


def test_distillation_loss_is_zero_only_when_student_matches_teacher():
    teacher = torch.nn.Linear(5, 7)
    x = torch.randn(6, 5)
    same = engine.distillation_loss(teacher(x), teacher, x, 4.0)
    assert same.abs().item() < 1e-6
    other = engine.distillation_loss(torch.randn(6, 7), teacher, x, 4.0)
    assert other.item() > 1e-3
    # gradients reach the student only
    student = torch.randn(6, 7, requires_grad=True)
    engine.distillation_loss(student, teacher, x, 2.0).backward()
    assert student.grad.abs().sum() > 0 and teacher.weight.grad is None


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
    sp = json.load(open(base / "config.json"))["args"]["sparsity"]  # the pull is on record
    assert sp["s"] == 1e-3 and sp["l1_pull"] == pytest.approx(1e-3 * sp["lr_sum"]) and 0 < sp["wd_shrink"] < 1
    save = tmp_path / "pruned"
    report = prune_cli.main(["--model", str(base / "best.pth"), "--percent", "0.5", "--save", str(save),
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
    # distillation from the unpruned parent: recorded, resumable, and it learns
    kd = tmp_path / "kd"
    fer_vgg_prune.main(["--model", str(save / "pruned.pth"), "--epochs", "2", "--device", "cpu", "--lr", "0.02",
                        "--teacher", str(base / "best.pth"), "--kd-alpha", "0.7", "--out", str(kd)])
    cfg = json.load(open(kd / "config.json"))["args"]
    assert cfg["teacher"] == str(base / "best.pth") and cfg["kd_alpha"] == 0.7
    assert load_checkpoint(kd / "best.pth")["metrics"]["at_best"]["PublicTest"] > 14.3
    # prune again from an already pruned checkpoint
    again = prune_cli.main(["--model", str(save / "best.pth"), "--percent", "0.3", "--save", str(tmp_path / "p2"),
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


def test_auto_sparsity_is_capped_where_the_schedule_is_too_short():
    """A short, low-lr schedule would need a huge s to zero a scale by mid-run; auto stops at s_max
    and says so, a given s is never capped."""
    args = argparse.Namespace(**dict(config.FAST_FER, epochs=6))
    factor = engine.lr_factor(args, 9)
    free = prune.sparsity_plan("auto", 0.5, args.lr, factor, 54, args.wd, args.momentum)
    capped = prune.sparsity_plan("auto", 0.5, args.lr, factor, 54, args.wd, args.momentum, s_max=2e-3)
    assert free["s"] > 0.1 and free["capped_from"] is None
    assert capped["s"] == 2e-3 and capped["capped_from"] == pytest.approx(free["s"])
    assert capped["unaided_scale_at_end"] > 0.9  # too weak to zero anything on this schedule: reported
    given = prune.sparsity_plan(0.5, None, args.lr, factor, 54, args.wd, args.momentum, s_max=2e-3)
    assert given["s"] == 0.5 and given["capped_from"] is None


def test_long_recipe_keeps_the_per_step_pull_of_the_short_one(tmp_path):
    """cpu-120 times its --s auto earlier (0.2 of the run) so its s stays near cpu-lean's: at 0.5 weight
    decay over 120 epochs does most of the zeroing and the L1 term pulls 12x less per step. A typed
    --s-zero-at still wins, and the other recipes keep 0.5."""
    import mainpro_FER
    steps = 225  # FER2013's Training in batches of 128

    def resolved(*argv):
        args = config.parse_args(mainpro_FER.build_parser(), ["--sr", *argv])
        args = config.resolve_args(args, mainpro_FER.RECIPES, str(tmp_path / "run"))
        plan = prune.sparsity_plan("auto", args.s_zero_at, args.lr, engine.lr_factor(args, steps),
                                   args.epochs * steps, args.wd, args.momentum)
        return args.s_zero_at, plan["s"]

    assert resolved("--recipe", "cpu-lean")[0] == resolved("--recipe", "published")[0] == 0.5
    lean, long, long_half = resolved("--recipe", "cpu-lean"), resolved("--recipe", "cpu-120"), \
        resolved("--recipe", "cpu-120", "--s-zero-at", "0.5")
    assert long[0] == 0.2 and long_half[0] == 0.5
    assert long[1] == pytest.approx(5.81e-4, rel=0.01) and lean[1] == pytest.approx(6.31e-4, rel=0.01)
    assert long_half[1] == pytest.approx(5.36e-5, rel=0.01)  # the failed first try, still reachable


def test_synthetic_sparsity_parent_learns(synthetic_h5, tmp_path):
    """run.sh's demo: the sparsity parent on a short schedule must learn like the parent without
    sparsity. Without the cap (--s-max 1) --s auto picks s ~ 0.45 here and the parent collapses to
    chance, the failure this guards against."""
    import mainpro_FER
    small = ["--data", synthetic_h5, "--model", "VGG11", "--width", "0.125", "--device", "cpu", "--eval-bs", "512",
             "--recipe", "fast", "--epochs", "6", "--tune"]
    acc = {}
    for name, extra in (("plain", []), ("sr", ["--sr"]), ("uncapped", ["--sr", "--s-max", "1"])):
        s = mainpro_FER.main([*small, "--out", str(tmp_path / name), *extra])
        acc[name] = s["honest"]["PublicTest"]
    assert acc["plain"] > 60
    assert acc["sr"] > acc["plain"] - 10, acc
    assert acc["uncapped"] < 30, acc  # the guard is what makes the difference


class TwoConvNet(torch.nn.Module):
    """A new architecture declared in a test: two conv+BN blocks, the second read by the classifier.
    Only models/ is touched to add it (models.register), never prune.py."""

    def __init__(self, cfg=None, num_classes=7, in_channels=1):
        super().__init__()
        self.cfg = list(cfg or [6, 5])
        self.conv_a = torch.nn.Conv2d(in_channels, self.cfg[0], 3, padding=1, bias=False)
        self.bn_a = torch.nn.BatchNorm2d(self.cfg[0])
        self.conv_b = torch.nn.Conv2d(self.cfg[0], self.cfg[1], 3, stride=2, padding=1, bias=True)
        self.bn_b = torch.nn.BatchNorm2d(self.cfg[1])
        self.classifier = torch.nn.Linear(self.cfg[1], num_classes)
        self.model_args = {}

    def slimming_units(self):
        return [{"label": "a", "bn": "bn_a", "producer": "conv_a", "consumers": ["conv_b"]},
                {"label": "b", "bn": "bn_b", "producer": "conv_b", "consumers": ["classifier"]}]

    def pruned(self, kept):
        return TwoConvNet(cfg=kept, num_classes=self.classifier.out_features, in_channels=self.conv_a.in_channels)

    def forward(self, x):  # (B, 1, 44, 44)
        x = torch.relu(self.bn_a(self.conv_a(x)))
        x = torch.relu(self.bn_b(self.conv_b(x)))  # (B, C_b, 22, 22)
        return self.classifier(x.mean((2, 3)))


def test_a_newly_registered_architecture_sparsity_trains_prunes_and_rebuilds(synthetic_h5, tmp_path, monkeypatch):
    monkeypatch.setitem(models.MODELS, "TwoConvNet", TwoConvNet)  # what models.register does, undone after
    base = tmp_path / "run"
    mainpro_FER.main(["--data", synthetic_h5, "--out", str(base), "--model", "TwoConvNet", "--device", "cpu",
                      "--recipe", "fast", "--epochs", "1", "--sr", "--s", "1e-3", "--eval-bs", "512"])
    ck = load_checkpoint(base / "best.pth")
    assert ck["arch"] == "TwoConvNet" and json.load(open(base / "config.json"))["args"]["s"] == 1e-3
    report = prune_cli.main(["--checkpoint", str(base / "best.pth"), "--percent", "0.4", "--min-channels", "1", "--round-to", "1",
                             "--out", str(tmp_path / "pruned"), "--device", "cpu"])
    assert report["max_abs_diff_masked_vs_compact"] < 1e-5
    assert sum(report["cfg_after"]) == sum(report["cfg_before"]) - int(0.4 * 11)
    assert [row["layer"] for row in report["layers"]] == ["a", "b"]
    rebuilt = models.model_from_checkpoint(load_checkpoint(tmp_path / "pruned" / "pruned.pth"))
    assert rebuilt.cfg == report["cfg_after"] and prune.n_params(rebuilt) == report["pruned"]["params"]
    # to a compute target, channel counts rounded to multiples of 2
    report = prune_cli.main(["--checkpoint", str(base / "best.pth"), "--target-macs", "0.6", "--round-to", "2",
                             "--min-channels", "1", "--out", str(tmp_path / "macs"), "--device", "cpu"])
    assert report["achieved_macs_fraction"] == pytest.approx(1 / report["ratios"]["macs"], rel=1e-6)
    assert all(k % 2 == 0 or k == full for k, full in zip(report["cfg_after"], report["cfg_before"]))
    assert report["cfg_after"] != report["cfg_before"] and report["max_abs_diff_masked_vs_compact"] < 1e-5
    assert "to 0.6 of the multiply-adds" in open(tmp_path / "macs" / "prune_report.txt").read()


def test_an_architecture_without_slimming_units_is_refused_in_one_line():
    with pytest.raises(TypeError, match="Linear does not declare slimming_units"):
        prune.prunable_bns(torch.nn.Linear(2, 2))


def test_macs_weights_match_a_hand_computation():
    """MorphNet's cost of a channel on TwoConvNet (44x44 input, all channels alive):
    conv_a 1->6, 3x3 at 44x44: C_a = 44*44*9 = 17,424; conv_b 6->5, 3x3 stride 2 -> 22x22:
    C_b = 22*22*9 = 4,356; classifier 5->7: C = 1.
    unit a: C_a * 1 input + C_b * 5 outputs = 39,204; unit b: C_b * 6 inputs + 1 * 7 outputs = 26,143;
    normalised by the mean over the 11 channels, (6 * 39,204 + 5 * 26,143) / 11 = 33,267.18."""
    net = TwoConvNet()
    for bn in (net.bn_a, net.bn_b):
        bn.weight.data.fill_(0.5)
    costs = prune.cost_model(net)
    assert prune.channel_costs(costs, [6, 5]) == pytest.approx([39204, 26143])
    assert prune.macs_with(costs, [6, 5]) == prune.count_macs(net)
    w = prune.sparsity_weights(net, "macs")
    assert w == pytest.approx([39204 / 33267.18, 26143 / 33267.18], rel=1e-6)
    assert (6 * w[0] + 5 * w[1]) / 11 == pytest.approx(1.0)  # the same total pull as uniform
    assert prune.sparsity_weights(net, "uniform") == [1.0, 1.0]
    net.bn_b.weight.data[:3] = 0.0  # dead channels of b stop costing unit a's channels their outputs
    assert prune.channel_costs(costs, [6, 2])[0] == pytest.approx(17424 + 4356 * 2)


def test_macs_target_and_round_to_keep_masked_equal_compact():
    m = randomised("VGG19", seed=3)
    full = prune.count_macs(m)
    masks, achieved = prune.macs_target_masks(m, 0.5, min_channels=4)
    compact = prune.compact_model(m, masks)
    assert prune.count_macs(compact) / full == pytest.approx(achieved, rel=1e-6)
    assert 0.45 < achieved <= 0.5  # stops at the first step under the target
    assert prune.max_output_difference(prune.masked_model(m, masks), compact) < 1e-9
    # per MAC freed, the early high-resolution layers are the expensive ones: they lose more channels
    kept = [int(k.sum()) / len(k) for k in masks]
    assert kept[0] < kept[-1]
    r_masks, _ = prune.channel_masks(m, 0.5, min_channels=4, round_to=8)
    assert all(int(k.sum()) % 8 == 0 or int(k.sum()) == len(k) for k in r_masks)
    plain, _ = prune.channel_masks(m, 0.5, min_channels=4)
    for r, p in zip(r_masks, plain):  # rounding only adds channels, the strongest of those dropped
        assert bool((r | p).eq(r).all()) and int(r.sum()) - int(p.sum()) < 8
    assert prune.max_output_difference(prune.masked_model(m, r_masks), prune.compact_model(m, r_masks)) < 1e-9


def test_sr_cost_macs_is_recorded_and_trains(synthetic_h5, tmp_path):
    mainpro_FER.main(["--data", synthetic_h5, "--out", str(tmp_path), "--model", "VGG11", "--width", "0.125",
                      "--device", "cpu", "--recipe", "fast", "--epochs", "1", "--sr", "--s", "1e-3",
                      "--sr-cost", "macs", "--tune"])
    plan = json.load(open(tmp_path / "config.json"))["args"]["sparsity"]
    assert plan["cost"] == "macs" and len(plan["weights_at_start"]) == 8
    n = [8, 16, 32, 32, 64, 64, 64, 64]  # VGG11 at width 0.125
    assert sum(w * k for w, k in zip(plan["weights_at_start"], n)) / sum(n) == pytest.approx(1.0, abs=1e-3)
    assert plan["weights_at_start"][0] > plan["weights_at_start"][-1]


def test_teacher_follows_the_student_into_channels_last(tiny_checkpoint, synthetic_h5, tmp_path, monkeypatch):
    seen = []
    real = engine.train_one_epoch

    def spy(*a, teacher=None, **k):  # the teacher each training step distils from
        seen.append(teacher)
        return real(*a, teacher=teacher, **k)

    monkeypatch.setattr(engine, "train_one_epoch", spy)
    fer_vgg_prune.main(["--checkpoint", tiny_checkpoint, "--teacher", tiny_checkpoint, "--data", synthetic_h5,
                        "--epochs", "1", "--device", "cpu", "--amp", "none", "--channels-last",
                        "--out", str(tmp_path / "kd")])
    convs = [m for m in seen[0].modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert not any(p.requires_grad for p in seen[0].parameters()) and not seen[0].training


def test_bench_prune_cfg_is_checked_before_anything_is_timed():
    r = run_script("bench/bench_prune.py", "--rules", "", "--cfg", "x=64,64,M,wide", timeout=120)
    assert r.returncode != 0 and "error: --cfg 'x=64,64,M,wide'" in r.stderr
    assert "|" not in r.stdout  # no table
