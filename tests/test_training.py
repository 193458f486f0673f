import argparse
import csv
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

import config
import engine
import inference
import mainpro_FER
from conftest import ROOT, run_script
from data_io import DataError
from utils import load_checkpoint, save_checkpoint

# a narrow VGG11 (8..64 channels) learns the synthetic faces in seconds on a CPU
SMALL = ["--model", "VGG11", "--width", "0.125", "--device", "cpu", "--eval-bs", "512"]


def train(synthetic_h5, out, *extra):
    mainpro_FER.main(["--data", synthetic_h5, "--out", str(out), *SMALL, *extra])
    return load_checkpoint(os.path.join(out, "last.pth"))


def rows(out):
    with open(os.path.join(out, "metrics.csv")) as f:
        return list(csv.DictReader(f))


def test_short_run_beats_chance_by_a_wide_margin(synthetic_h5, tmp_path):
    ck = train(synthetic_h5, tmp_path, "--recipe", "fast", "--epochs", "6")
    best = load_checkpoint(tmp_path / "best.pth")
    acc = best["metrics"]["at_best"]
    assert acc["PrivateTest"] > 60 and acc["PublicTest"] > 60  # chance is 14.3
    # checkpoint contents: everything that rebuilds the model and resumes the run
    for key in ("format", "arch", "cfg", "num_classes", "class_names", "net", "epoch", "optimizer", "scheduler",
                "rng", "metrics", "args"):
        assert key in ck
    assert ck["epoch"] == 6 and ck["arch"] == "VGG11" and ck["cfg"][0] == 8 and ck["synthetic"]
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in ck["net"])
    assert len(rows(tmp_path)) == 6
    assert os.path.exists(tmp_path / "config.json") and os.path.exists(tmp_path / "summary.json")


@pytest.mark.parametrize("ema", [[], ["--ema", "0.99"],
                                 ["--schedule", "plateau", "--plateau-patience", "0", "--mix", "cutmix", "--translate",
                                  "0.1", "--affine", "5"]],
                         ids=["plain", "ema", "plateau-cutmix-translate"])
def test_resume_equals_uninterrupted(synthetic_h5, tmp_path, ema):
    a = train(synthetic_h5, tmp_path / "a", "--epochs", "2", *ema)
    train(synthetic_h5, tmp_path / "b", "--epochs", "1", *ema)
    b = train(synthetic_h5, tmp_path / "b", "--epochs", "2", "--resume")
    assert b["epoch"] == 2
    for key in ("net", "train_net") if "--ema" in ema else ("net",):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    def strip(rs):  # timings differ run to run
        return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rs]
    assert strip(rows(tmp_path / "a")) == strip(rows(tmp_path / "b"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_resume_on_cuda(synthetic_h5, tmp_path):
    # a checkpoint read back onto the GPU holds its RNG states there; they must return to the CPU
    # (a resume failed with "RNG state must be a torch.ByteTensor" on an H200, torch 2.11)
    train(synthetic_h5, tmp_path, "--epochs", "1", "--device", "cuda")
    ck = train(synthetic_h5, tmp_path, "--epochs", "2", "--resume", "--device", "cuda")
    assert ck["epoch"] == 2 and len(rows(tmp_path)) == 2


def test_ema_is_what_gets_evaluated_and_saved(synthetic_h5, tmp_path):
    import models
    from dataset import H5Dataset
    data = H5Dataset(synthetic_h5)
    ck = train(synthetic_h5, tmp_path, "--recipe", "fast", "--epochs", "2", "--ema", "0.9")
    assert ck["ema_updates"] == 2 * -(-len(data.load("Training")[0]) // 128)  # one update per step
    # "net" is the average, not the raw weights, and it is the model whose accuracy was logged
    assert any(not torch.equal(ck["net"][k], ck["train_net"][k]) for k in ck["net"])
    x, y = data.load("PublicTest")
    logged = float(rows(tmp_path)[-1]["PublicTest_loss"])
    assert abs(engine.evaluate(models.model_from_checkpoint(ck), x, y)["loss"] - logged) < 1e-3
    raw = models.model_from_checkpoint({**ck, "net": ck["train_net"]})
    assert abs(engine.evaluate(raw, x, y)["loss"] - logged) > 1e-3
    with pytest.raises(DataError, match="--ema"):
        config.resolve_args(mainpro_FER.build_parser().parse_args(["--ema", "1.5"]), mainpro_FER.RECIPES,
                            str(tmp_path / "x"))


def test_tune_mode_never_reads_privatetest(synthetic_h5, tmp_path):
    train(synthetic_h5, tmp_path, "--epochs", "1", "--tune")
    assert not any(k.startswith("PrivateTest") for k in rows(tmp_path)[0])
    best = load_checkpoint(tmp_path / "best.pth")
    assert list(best["metrics"]["at_best"]) == ["PublicTest"] and list(best["predictions"]) == ["PublicTest"]


def test_resume_restores_saved_configuration(synthetic_h5, tmp_path, capsys):
    train(synthetic_h5, tmp_path, "--epochs", "1", "--lr", "0.02", "--eval-every", "2", "--amp", "none",
          "--eval-bs", "64", "--recipe", "fast")
    capsys.readouterr()
    # flags not typed on the resuming command keep the run's values, not the command-line defaults
    mainpro_FER.main(["--data", synthetic_h5, "--out", str(tmp_path), "--resume", "--epochs", "2"])
    ck = load_checkpoint(tmp_path / "last.pth")
    a = ck["args"]
    assert (a["lr"], a["width"], a["eval_every"], a["amp"], a["eval_bs"], a["model"]) == (0.02, 0.125, 2, "none", 64, "VGG11")
    assert ck["epoch"] == 2 and "typed" not in a
    import json
    assert json.load(open(tmp_path / "config.json"))["args"]["eval_every"] == 2
    # stretching a cosine schedule is said in one line; a typed flag that may change does change
    err = capsys.readouterr().err
    assert "stretches the cosine schedule" in err and "--epochs 2" in err
    ck = train(synthetic_h5, tmp_path, "--epochs", "3", "--resume", "--eval-every", "1", "--lr", "0.5")
    assert ck["args"]["eval_every"] == 1 and ck["args"]["lr"] == 0.02
    assert "keeps the saved lr" in capsys.readouterr().err
    # resuming a finished run trains nothing and leaves its record as it was
    record = open(tmp_path / "config.json").read(), open(tmp_path / "summary.json").read()
    train(synthetic_h5, tmp_path, "--epochs", "3", "--resume", "--eval-every", "7")
    assert (open(tmp_path / "config.json").read(), open(tmp_path / "summary.json").read()) == record


def test_resume_refuses_another_data_file(synthetic_h5, tmp_path):
    train(synthetic_h5, tmp_path / "run", "--epochs", "1")
    other = tmp_path / "other.h5"
    import shutil
    shutil.copy(synthetic_h5, other)
    r = run_script("mainpro_FER.py", "--data", str(other), "--out", str(tmp_path / "run"), "--resume", "--epochs", "2",
                   *SMALL)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "other.h5" in r.stderr and "trained on" in r.stderr
    assert load_checkpoint(tmp_path / "run" / "last.pth")["epoch"] == 1  # nothing written


def script_accuracies(monkeypatch, values):
    """engine.evaluate returns these accuracies in turn (on 4 images, for speed); the iterator."""
    scores = iter(values)
    real = engine.evaluate

    def scripted(model, x, y, *a, **k):
        out = real(model, x[:4], y[:4], *a, **k)
        out["acc"] = next(scores)
        out["pred"] = out["pred"].repeat(len(y) // 4 + 1)[:len(y)]  # one per image, as subsets index them
        return out
    monkeypatch.setattr(engine, "evaluate", scripted)
    return scores


def test_honest_selection(synthetic_h5, tmp_path, monkeypatch):
    """best.pth follows PublicTest; PrivateTest is reported at that epoch, not at its own best.
    By default PrivateTest is scored only at epochs where PublicTest improves."""
    # evaluation order: PublicTest, then PrivateTest if PublicTest improved
    scores = script_accuracies(monkeypatch, [50.0, 80.0, 70.0, 60.0, 60.0])
    train(synthetic_h5, tmp_path, "--epochs", "3")
    best = load_checkpoint(tmp_path / "best.pth")
    at_best = {k: v for k, v in best["metrics"]["at_best"].items() if k != "PrivateTest_dedup"}  # from preds
    assert best["epoch"] == 2 and at_best == {"PublicTest": 70.0, "PrivateTest": 60.0}
    assert [r["PrivateTest_acc"] != "" for r in rows(tmp_path)] == [True, True, False]
    assert next(scores, None) is None  # exactly five evaluations
    summary = __import__("json").load(open(tmp_path / "summary.json"))
    assert "PrivateTest" not in summary["test_selected_max"]  # unknown without every epoch's score


def test_honest_selection_with_test_curves(synthetic_h5, tmp_path, monkeypatch):
    """--test-curves scores every split every epoch (the test-selected comparison column)."""
    script_accuracies(monkeypatch, [50.0, 80.0, 70.0, 60.0, 60.0, 90.0])
    train(synthetic_h5, tmp_path, "--epochs", "3", "--test-curves")
    best = load_checkpoint(tmp_path / "best.pth")
    m = best["metrics"]
    assert best["epoch"] == 2 and m["epoch"] == 2
    assert {k: v for k, v in m["at_best"].items() if k != "PrivateTest_dedup"} == {"PublicTest": 70.0,
                                                                                  "PrivateTest": 60.0}
    assert m["test_selected"]["PrivateTest"] == [80.0, 1]  # as known at epoch 2
    final = load_checkpoint(tmp_path / "last.pth")["metrics"]
    assert final["epoch"] == 2 and final["test_selected"]["PrivateTest"] == [90.0, 3]


def test_lazy_test_scoring_changes_no_honest_figure(synthetic_h5, tmp_path):
    lazy = train(synthetic_h5, tmp_path / "lazy", "--epochs", "3")
    full = train(synthetic_h5, tmp_path / "full", "--epochs", "3", "--test-curves")
    assert lazy["metrics"]["at_best"] == full["metrics"]["at_best"] and lazy["metrics"]["epoch"] == full["metrics"]["epoch"]
    for k in lazy["net"]:
        assert torch.equal(lazy["net"][k], full["net"][k])
    lazy_rows, full_rows = rows(tmp_path / "lazy"), rows(tmp_path / "full")
    assert [r["PublicTest_acc"] for r in lazy_rows] == [r["PublicTest_acc"] for r in full_rows]
    assert all(r["PrivateTest_acc"] in ("", f["PrivateTest_acc"]) for r, f in zip(lazy_rows, full_rows))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(synthetic_h5, tmp_path, monkeypatch, capsys):
    train(synthetic_h5, tmp_path, "--epochs", "1", "--eval-every", "5")
    good = load_checkpoint(tmp_path / "last.pth")
    real = engine.F.cross_entropy
    monkeypatch.setattr(engine.F, "cross_entropy", lambda *a, **k: real(*a, **k) * float("nan"))
    with pytest.raises(SystemExit) as e:
        train(synthetic_h5, tmp_path, "--epochs", "2", "--resume")
    assert e.value.code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nan" in err[0] and "epoch 2" in err[0] and "last.pth" in err[0]
    kept = load_checkpoint(tmp_path / "last.pth")
    assert kept["epoch"] == 1 and all(torch.equal(good["net"][k], kept["net"][k]) for k in good["net"])


def test_killed_save_leaves_old_checkpoint_loadable(tmp_path):
    path = tmp_path / "last.pth"
    save_checkpoint({"arch": "VGG11", "net": {"w": torch.ones(3)}, "epoch": 1}, path)
    # a process killed (SIGKILL) in the middle of writing the next checkpoint
    code = f"""
import os, signal, torch, utils
def dying_save(obj, f):
    with open(f, "wb") as fh:
        fh.write(b"PK half a zip file")
        fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = dying_save
utils.save_checkpoint({{"arch": "VGG11", "net": {{"w": torch.zeros(3)}}, "epoch": 2}}, {str(path)!r})
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT)
    assert r.returncode == -signal.SIGKILL
    ck = load_checkpoint(path)
    assert ck["epoch"] == 1 and torch.equal(ck["net"]["w"], torch.ones(3))


class Payload:
    def __reduce__(self):
        return (open, (MARKER, "w"))


MARKER = ""


def test_weights_only_refuses_pickled_code(tmp_path):
    global MARKER
    MARKER = str(tmp_path / "pwned")
    torch.save({"arch": "VGG11", "net": {}, "evil": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(DataError, match="not a loadable checkpoint"):
        load_checkpoint(tmp_path / "evil.pth")
    assert not os.path.exists(MARKER)


def test_cli_errors_are_one_line(tmp_path):
    r = run_script("mainpro_FER.py", "--data", str(tmp_path / "nope.h5"), "--epochs", "1")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "nope.h5 not found" in r.stderr and "preprocess_fer2013" in r.stderr
    r = run_script("mainpro_FER.py", "--model", "AlexNet")
    assert r.returncode == 2 and "unknown model 'AlexNet'" in r.stderr
    assert not os.path.exists(os.path.join(ROOT, "checkpoints", "FER2013_AlexNet"))


def test_lr_schedules():
    import argparse
    a = argparse.Namespace(**config.PUBLISHED_FER)
    f = engine.lr_factor(a, steps_per_epoch=10)
    assert f(0) == 1 and f(84 * 10 + 9) == 1 and f(85 * 10) == pytest.approx(0.9) and f(90 * 10) == pytest.approx(0.81)
    a.schedule = "onecycle"
    f = engine.lr_factor(a, 10)
    assert f(0) == pytest.approx(0.1) and max(f(s) for s in range(2500)) == pytest.approx(1.0) and f(2499) < 0.01


def test_a_run_folder_has_one_writer(synthetic_h5, tmp_path):
    """A second process resuming a folder that is still training stops with one line, touching nothing."""
    os.makedirs(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
sys.path.insert(0, {ROOT!r})
import utils
f = utils.claim_run_folder({str(tmp_path / "run")!r})
print("locked", flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        r = run_script("mainpro_FER.py", "--data", synthetic_h5, "--out", str(tmp_path / "run"), "--resume",
                       "--epochs", "1", *SMALL)
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
        assert f"pid {holder.pid}" in r.stderr and "in use by another training process" in r.stderr
        assert not os.path.exists(tmp_path / "run" / "last.pth")
    finally:
        holder.kill()
        holder.wait()
    train(synthetic_h5, tmp_path / "run", "--epochs", "1")  # free again once the holder is gone


def test_empty_split_is_one_error_line(synthetic_h5, tmp_path):
    """An HDF5 file whose PrivateTest has no rows (e.g. made from a partial CSV by an older
    version) stops training before anything is written, instead of logging 'PrivateTest nan'."""
    import shutil

    import h5py
    path = tmp_path / "partial.h5"
    shutil.copy(synthetic_h5, path)
    with h5py.File(path, "a") as h5:
        for key, shape, dtype in (("PrivateTest_pixel", (0, 2304), "uint8"), ("PrivateTest_label", (0,), "int64")):
            del h5[key]
            h5.create_dataset(key, shape, dtype)
    r = run_script("mainpro_FER.py", "--data", str(path), "--out", str(tmp_path / "run"), "--epochs", "1", *SMALL)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "PrivateTest has no images" in r.stderr and not os.path.exists(tmp_path / "run")


def test_schedules_match_torchs_own_curves():
    """The per-step closed forms (LambdaLR) give torch's CosineAnnealingLR (+ LinearLR warm-up)
    and OneCycleLR (linear, from lr/10 to lr/1000) curves. They stay closed forms because torch's
    cosine is recursive, so a resumed run with a longer --epochs would bend it instead of the
    documented jump, and OneCycleLR peaks one step earlier."""
    import argparse

    def lrs(make, steps):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.05)
        sched = make(opt)
        out = []
        for _ in range(steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return torch.tensor(out, dtype=torch.float64)

    spe, epochs = 7, 20
    total = spe * epochs
    a = argparse.Namespace(**dict(config.PUBLISHED_FER, schedule="cosine", warmup=2, epochs=epochs, lr=0.05))
    ours = lrs(lambda o: torch.optim.lr_scheduler.LambdaLR(o, engine.lr_factor(a, spe)), total)
    warm = 2 * spe
    theirs = lrs(lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / warm, total_iters=warm - 1), warm)
    assert torch.allclose(ours[:warm], theirs, rtol=0, atol=1e-12)  # the warm-up
    a.warmup = 0
    ours = lrs(lambda o: torch.optim.lr_scheduler.LambdaLR(o, engine.lr_factor(a, spe)), total)
    theirs = lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total), total)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-9)
    a.schedule = "onecycle"
    ours = lrs(lambda o: torch.optim.lr_scheduler.LambdaLR(o, engine.lr_factor(a, spe)), total)
    theirs = lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.05, total_steps=total, pct_start=0.25, anneal_strategy="linear", div_factor=10,
        final_div_factor=100, cycle_momentum=False), total)
    assert (ours - theirs).abs().max() < 0.05 * 0.9 / (0.25 * total) + 1e-9  # one step of the warm-up ramp


@pytest.mark.parametrize("amx,avx,expect", [(True, False, ("bf16", True)), (False, True, ("bf16", True)),
                                             (False, False, ("none", False))])
def test_amp_auto_follows_the_cpus_bf16(monkeypatch, amx, avx, expect):
    """--amp auto on a CPU: bf16 autocast + channels_last only with native bf16 (AMX or AVX512-BF16)."""
    flags = {"_is_amx_tile_supported": amx, "_is_avx512_bf16_supported": avx}
    monkeypatch.setattr(inference, "_cpu_flag", lambda probe, flag: flags[probe])
    p = inference.resolve_precision("auto", False, torch.device("cpu"))
    assert (p["amp"], p["channels_last"]) == expect
    assert ("AMX" if amx else "AVX512-BF16" if avx else "no native bf16") in p["precision_why"]
    line = inference.describe_precision(p)
    assert line.startswith("precision: " + ("bf16 autocast + channels_last" if expect[0] == "bf16" else "fp32"))
    # a typed setting is kept as it is; a resumed run keeps its saved reason
    assert inference.resolve_precision("none", False, torch.device("cpu")) == {
        "amp": "none", "channels_last": False, "precision_why": "--amp none"}
    assert inference.resolve_precision("bf16", True, torch.device("cpu"), "auto: saved")["precision_why"] == "auto: saved"


def test_run_records_its_precision_and_later_scoring_uses_it(synthetic_h5, tmp_path, monkeypatch):
    monkeypatch.setattr(inference, "_cpu_flag", lambda probe, flag: probe == "_is_avx512_bf16_supported")
    train(synthetic_h5, tmp_path, "--recipe", "fast", "--epochs", "1")
    import json
    saved = json.load(open(tmp_path / "config.json"))["args"]
    assert saved["amp"] == "bf16" and saved["channels_last"] and "AVX512-BF16" in saved["precision_why"]
    ck = load_checkpoint(tmp_path / "best.pth")
    assert inference.run_precision(ck, "cpu") == (torch.bfloat16, "bf16", True)
    # a run saved before auto was resolved recorded 'auto': that meant fp32 on a CPU
    assert inference.run_precision({"args": {"amp": "auto"}}, "cpu") == (None, "fp32", False)


def test_select_last_scores_only_its_window_with_ten_crops(synthetic_h5, tmp_path, capsys):
    """--select-last 2 of 5 epochs: epochs 4-5 are scored with 10 crops and may be chosen; earlier
    evaluations are a centre-crop curve of PublicTest that chooses nothing."""
    train(synthetic_h5, tmp_path, "--recipe", "fast", "--epochs", "5", "--select-last", "2", "--eval-every", "1")
    r = rows(tmp_path)
    assert [bool(x["PublicTest_acc"]) for x in r] == [False, False, False, True, True]
    assert [bool(x["PublicTest_center_acc"]) for x in r] == [True, True, True, False, False]
    assert load_checkpoint(tmp_path / "best.pth")["epoch"] in (4, 5)
    with pytest.raises(SystemExit):
        train(synthetic_h5, tmp_path / "bad", "--recipe", "fast", "--epochs", "5", "--select-last", "6")
    assert "--select-last 6: must be between 0 and --epochs (5)" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "bad" / "metrics.csv")


def test_privatetest_without_training_duplicates(synthetic_h5, tmp_path):
    """PrivateTest_dedup: PrivateTest less the rows whose pixels occur in Training, scored from the
    same predictions; old runs without it get it back from best.pth (dataset.honest_scores)."""
    import json
    import shutil

    import h5py

    from dataset import DEDUP, H5Dataset, honest_scores
    data = tmp_path / "dups.h5"
    shutil.copy(synthetic_h5, data)
    with h5py.File(data, "r+") as h5:  # the first 9 PrivateTest rows become copies of Training rows
        h5["PrivateTest_pixel"][:9] = h5["Training_pixel"][10:19]
    seen = H5Dataset(data).seen_in("PrivateTest")
    assert seen[:9].all() and not seen[9:].any()
    train(str(data), tmp_path / "run", "--epochs", "2")
    best = load_checkpoint(tmp_path / "run" / "best.pth")
    y = H5Dataset(data).arrays("PrivateTest")[1]
    pred = best["predictions"]["PrivateTest"].numpy()
    want = 100.0 * float((pred[9:] == y[9:]).mean())
    summary = json.load(open(tmp_path / "run" / "summary.json"))
    assert summary["honest"][DEDUP] == pytest.approx(want, abs=1e-4)
    assert summary["honest"]["PrivateTest"] == pytest.approx(100.0 * float((pred == y).mean()), abs=1e-4)
    assert rows(tmp_path / "run")[-1][f"{DEDUP}_acc"] != "" or best["epoch"] == 1
    # a run recorded before the column existed: rescored from its saved predictions
    del summary["honest"][DEDUP]
    json.dump(summary, open(tmp_path / "run" / "summary.json", "w"))
    assert honest_scores(str(tmp_path / "run"))[DEDUP] == pytest.approx(want, abs=1e-4)


def test_plateau_schedule_lowers_the_lr_when_selection_stalls(synthetic_h5, tmp_path, monkeypatch):
    """--schedule plateau: PublicTest 50, 40, 40 with patience 0 -> the lr is cut after epoch 2 and 3."""
    script_accuracies(monkeypatch, [50.0, 60.0, 40.0, 40.0])  # PublicTest, PrivateTest (epoch 1), then PublicTest
    train(synthetic_h5, tmp_path, "--epochs", "3", "--schedule", "plateau", "--plateau-patience", "0",
          "--plateau-factor", "0.5", "--lr", "0.02")
    lrs = [float(r["lr"]) for r in rows(tmp_path)]  # the lr each epoch started with
    assert lrs[0] == pytest.approx(0.02) and lrs[1] == pytest.approx(0.02) and lrs[2] == pytest.approx(0.01)
    assert load_checkpoint(tmp_path / "last.pth")["plateau"] == {"scale": 0.25, "best": 50.0, "bad": 0}
    plateau = {"scale": 1.0, "best": -1.0, "bad": 0}
    args = argparse.Namespace(plateau_patience=2, plateau_factor=0.5)
    for score in (10, 9, 9, 9, None, 11, 8):
        engine.plateau_update(plateau, score, args)
    assert plateau == {"scale": 0.5, "best": 11, "bad": 1}


def test_a_fresh_student_distils_from_the_mean_of_several_teachers(synthetic_h5, tmp_path, capsys):
    """mainpro_FER.py --teacher A B: the teacher is models.Ensemble, the mean of A's and B's logits."""
    import models
    for seed in (0, 1):
        train(synthetic_h5, tmp_path / f"t{seed}", "--epochs", "1", "--seed", str(seed))
    paths = [str(tmp_path / f"t{seed}" / "best.pth") for seed in (0, 1)]
    net, cks = models.teacher_from_checkpoints(paths)
    x = torch.randn(3, 1, 44, 44)
    each = [models.model_from_checkpoint(ck).eval()(x) for ck in cks]
    assert isinstance(net, models.Ensemble) and torch.allclose(net(x), (each[0] + each[1]) / 2, atol=1e-6)
    assert not any(p.requires_grad for p in net.parameters())
    capsys.readouterr()
    ck = train(synthetic_h5, tmp_path / "student", "--epochs", "1", "--teacher", *paths)
    assert "the mean of 2 networks" in capsys.readouterr().out and ck["args"]["teacher"] == paths
    # a teacher of other classes is refused with one line
    bad = load_checkpoint(paths[1])
    bad["class_names"] = [f"c{i}" for i in range(7)]
    save_checkpoint(bad, tmp_path / "other.pth")
    with pytest.raises(SystemExit):
        train(synthetic_h5, tmp_path / "refused", "--epochs", "1", "--teacher", paths[0], str(tmp_path / "other.pth"))
    assert "must match" in capsys.readouterr().err


def test_ensemble_score_bench_scores_members_and_their_mean(synthetic_h5, tmp_path):
    for seed in (0, 1):
        train(synthetic_h5, tmp_path / f"t{seed}", "--epochs", "1", "--seed", str(seed))
    r = run_script("bench/ensemble_score.py", *(str(tmp_path / f"t{s}" / "best.pth") for s in (0, 1)),
                   "--data", synthetic_h5)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("| ") and "network" not in ln]
    assert len(rows) == 3 and rows[-1].startswith("| ensemble of 2 |") and "(1.00x)" in rows[0]


def test_erasing_recipe_is_cpu_120_plus_erasing_and_trains_what_the_ingredient_runs_trained(tmp_path):
    """--recipe cpu-120-erase: cpu-120 with --erase 0.5 and nothing else; its seeds 0 and 1 are the ingredient
    runs (`--recipe cpu-lean --epochs 120 --erase 0.5`), so those two settings must resolve to the same training."""
    import mainpro_FER

    def resolved(*argv):
        args = config.parse_args(mainpro_FER.build_parser(), list(argv))
        return vars(config.resolve_args(args, mainpro_FER.RECIPES, str(tmp_path / "run")))

    erase, base = resolved("--recipe", "cpu-120-erase"), resolved("--recipe", "cpu-120")
    assert {k for k in erase if erase[k] != base[k]} == {"recipe", "erase"} and erase["erase"] == 0.5
    ingredient = resolved("--recipe", "cpu-lean", "--epochs", "120", "--erase", "0.5")
    # s_zero_at only times the sparsity pull (--sr), which neither run uses
    assert {k for k in erase if erase[k] != ingredient[k]} == {"recipe", "s_zero_at"} and not erase["sr"]


def test_unseal_scores_a_tune_run_as_the_loop_would_have_and_only_once(synthetic_h5, tmp_path):
    """bench/unseal.py: a --tune run's PrivateTest, read after the choice, is the figure the same run
    without --tune logged (same seed, same selected epoch); summary.json gets it, and a second read is refused."""
    tuned, full = tmp_path / "tuned", tmp_path / "full"
    for out, extra in ((tuned, ["--tune"]), (full, [])):
        train(synthetic_h5, out, "--recipe", "cpu-lean", "--epochs", "3", "--select-last", "2", "--amp", "none", *extra)
    assert "PrivateTest" not in json.loads((tuned / "summary.json").read_text())["honest"]
    r = run_script("bench/unseal.py", str(tuned), "--device", "cpu")
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads((tuned / "summary.json").read_text())
    want = json.loads((full / "summary.json").read_text())["honest"]
    assert got["honest"]["PublicTest"] == want["PublicTest"]  # the same training and the same choice
    for k in ("PrivateTest", "PrivateTest_dedup"):
        assert got["honest"][k] == pytest.approx(want[k], abs=1e-6), k
    assert got["unsealed"]["epoch"] == got["best_epoch"]
    r = run_script("bench/unseal.py", str(tuned))
    assert r.returncode != 0 and "read once" in r.stderr and r.stderr.strip().count("\n") == 0
    assert json.loads((tuned / "summary.json").read_text()) == got  # untouched
    r = run_script("bench/unseal.py", str(tmp_path / "nothing"))
    assert r.returncode != 0 and "not found" in r.stderr
