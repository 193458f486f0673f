"""The slimming protocol (protocol.py, launched by slim_protocol.sh, run.sh and bench/gpu_run.sh) end to
end on small generated data: every stage for VGG and ResNet, a rerun that resumes without training, a
re-prune when the parent checkpoint is newer than the pruned one, and its commands run by hand giving
the same runs; then the bench/ tables that read protocol folders."""
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT, fer_rows, run_script, write_csv


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_protocol_runs_every_stage_resumes_and_reprunes(tmp_path):
    csv = write_csv(tmp_path / "fer2013.csv", fer_rows(150, seed=4))
    out = tmp_path / "run"
    env = dict(os.environ, PYTHON=sys.executable, WIDTH="0.125", EPOCHS="2", FT_EPOCHS="1", SKIP_BENCH="1",
               ARCHS="VGG11 Resnet18", EXTRA="--test-curves", TQDM_DISABLE="1", PLOTS="1", LATENCY_ROUNDS="1")
    cmd = ["bash", os.path.join(ROOT, "bench", "gpu_run.sh"), str(csv), str(out)]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    table = (out / "table.md").read_text()
    runs = [f"{a}{s}" for a in ("VGG11", "Resnet18") for s in ("_sr", "_sr_pruned0.5r8", "_sr_pruned0.7r8", "")]
    for run in runs:
        assert f"| {run} |" in table, run
        assert (out / run / "metrics.csv").exists() and (out / run / "best.pth").exists()
    assert "distilled" in table and "fewer" in table and "faster" in table
    for fig in ("VGG11_sr/curves.png", "VGG11_sr_pruned0.5r8/pruning_comparison.png",
                "Resnet18_sr_pruned0.5r8/PrivateTest_confusion.png"):
        assert (out / fig).exists(), fig
    assert "s*sum(lr)" in first.stdout  # the sparsity pull is logged
    assert "$ python prune_resnet.py --percent 0.5 --round-to 8" in (out / "progress.log").read_text()
    # the rerun finds every stage done: no training, no pruning
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "nothing to do" in again.stdout and "epoch   1" not in again.stdout and " prune: " not in again.stdout
    assert "figures:" not in again.stdout  # nor are the table and figures redone
    # a newer parent makes its pruned nets stale: pruned again and fine-tuned again
    time.sleep(1.1)
    os.utime(out / "VGG11_sr" / "best.pth")
    third = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert third.returncode == 0, third.stderr[-2000:]
    assert third.stdout.count(" prune: VGG11_sr_pruned") == 2 and " prune: Resnet18" not in third.stdout
    assert "figures:" in third.stdout
    assert (out / "VGG11_sr_pruned0.5r8" / "pruned.pth").stat().st_mtime > (out / "VGG11_sr" / "best.pth").stat().st_mtime


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_protocol_compute_aware_rules(synthetic_h5, tmp_path):
    """slim_protocol.sh with MACs-weighted sparsity and a MACs target, channels rounded to 8, and
    PERCENTS empty (no threshold rule): only those folders, pruned to multiples of 8."""
    out = tmp_path / "run"
    env = dict(os.environ, PYTHON=sys.executable, WIDTH="0.25", EPOCHS="2", FT_EPOCHS="1", ARCHS="VGG11",
               PERCENTS="", MACS_TARGETS="0.6", ROUND_TO="8", SR_COST="macs", BASELINE="0", PLOTS="0",
               LATENCY_ROUNDS="1", TQDM_DISABLE="1", EXTRA="--amp none")
    r = subprocess.run(["bash", os.path.join(ROOT, "slim_protocol.sh"), synthetic_h5, str(out)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["VGG11_srmacs", "VGG11_srmacs_m0.6r8"]
    assert json.load(open(out / "VGG11_srmacs" / "config.json"))["args"]["sr_cost"] == "macs"
    report = json.load(open(out / "VGG11_srmacs_m0.6r8" / "prune_report.json"))
    kept = [c for c in report["cfg_after"] if c != "M"]
    assert all(c % 8 == 0 for c in kept) and report["max_abs_diff_masked_vs_compact"] < 1e-4
    assert (out / "VGG11_srmacs_m0.6r8" / "best.pth").exists() and "| VGG11_srmacs_m0.6r8 |" in r.stdout


def test_protocol_commands_typed_by_hand_make_the_same_runs(synthetic_h5, tmp_path):
    """What `protocol.py --dry-run` prints, run one command after another as a user would (each its own
    process, the scripts' own defaults for everything not printed), gives the protocol's own runs:
    the same PublicTest and PrivateTest in every run folder."""
    import protocol
    flags = ["--archs", "VGG11", "--width", "0.125", "--epochs", "2", "--ft-epochs", "1", "--prune", "percent:0.5",
             "--no-plots", "--latency-rounds", "1", "--seed", "3"]
    protocol.main([synthetic_h5, str(tmp_path / "protocol"), *flags])
    r = run_script("protocol.py", synthetic_h5, str(tmp_path / "by_hand"), *flags, "--dry-run")
    assert r.returncode == 0, r.stderr
    commands = [shlex.split(line) for line in r.stdout.splitlines()]
    assert [c[:2] for c in commands] == [["python", "mainpro_FER.py"], ["python", "prune_vgg.py"],
                                         ["python", "fer_vgg_prune.py"], ["python", "mainpro_FER.py"]]
    for c in commands:
        done = run_script(*c[1:])
        assert done.returncode == 0, done.stderr[-2000:]
    for run in ("VGG11_sr", "VGG11_sr_pruned0.5r8", "VGG11"):
        auto, hand = (json.loads((tmp_path / d / run / "summary.json").read_text())["honest"]
                      for d in ("protocol", "by_hand"))
        assert auto == hand and "PrivateTest" in auto, run


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_slim_protocol_sh_passes_only_the_knobs_that_are_set():
    """The launcher: unset knobs take protocol.py's defaults; MACS_TARGETS without PERCENTS adds to the default
    threshold rules, PERCENTS="" removes them; EXTRA reaches every training command."""
    def commands(**env):
        r = subprocess.run(["bash", os.path.join(ROOT, "slim_protocol.sh"), "d.h5", "out", "--dry-run"],
                           env=dict(os.environ, PYTHON=sys.executable, **env), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout
    plain = commands()
    assert plain == run_script("protocol.py", "d.h5", "out", "--dry-run").stdout
    both = commands(MACS_TARGETS="0.5")
    assert all(f in both for f in ("--percent 0.5", "--percent 0.7", "--target-macs 0.5", "out/VGG19_sr_m0.5r8"))
    only = commands(PERCENTS="", MACS_TARGETS="0.47", ROUND_TO="1", FT_EPOCHS="20", BASELINE="0", EXTRA="--amp none")
    assert "--percent" not in only and "--target-macs 0.47 --round-to 1" in only and "out/VGG19_sr_m0.47 " in only
    assert "--epochs 20" in only and "--out out/VGG19\n" not in only and only.count("--amp none") == 2


def test_readme_slimming_commands_are_the_protocols():
    """README's by-hand slimming block is what `protocol.py --dry-run` prints for the command above it."""
    readme = open(os.path.join(ROOT, "README.md")).read()
    block = readme.split("<!-- protocol.py data/data.h5 runs/slim --prune percent:0.5 --dry-run -->\n```bash\n")[1]
    block = block.split("```")[0]
    r = run_script("protocol.py", "data/data.h5", "runs/slim", "--prune", "percent:0.5", "--dry-run")
    assert r.returncode == 0 and r.stdout.split() == [t for t in block.split() if t != "\\"], r.stdout


def test_sparsity_sweep_reads_privatetest_only_in_final(synthetic_h5, tmp_path):
    """bench/sparsity_sweep.py: PublicTest table without any PrivateTest score; --final reads it."""
    out = tmp_path / "sweep"
    base = [sys.executable, os.path.join(ROOT, "bench", "sparsity_sweep.py"), "--data", synthetic_h5, "--out", str(out),
            "--model", "VGG11", "--width", "0.125", "--epochs", "2", "--ft-epochs", "1", "--device", "cpu"]
    env = dict(os.environ, TQDM_DISABLE="1")
    r = subprocess.run([*base, "--zero-at", "none,0.5"], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| none |" in r.stdout and "| 0.5 |" in r.stdout and "PrivateTest not read" in r.stdout
    for d in ("none/parent", "0.5/parent", "none/pruned0.5", "0.5/pruned0.5"):
        rows = open(out / d / "metrics.csv").read()
        assert "PrivateTest" not in rows, d
    r = subprocess.run([*base, "--final", "0.5"], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0 and "| 0.5 |" in r.stdout and "read once" in r.stdout, r.stderr[-2000:]


def test_seed_table_means_and_pairs_runs_across_seed_folders(tmp_path):
    """bench/seed_table.py: mean +- std over seed folders, the paired difference to the same seed's
    baseline, runs missing from a folder left out and named, and one error line for bad folders.
    PrivateTest without Training's duplicates: its mean where every seed has it, '-' where a run
    predates it and has no best.pth to rescore."""
    accs = {0: {"VGG19": (67.0, 68.5), "VGG19_sr_pruned0.5": (66.0, 68.0), "VGG19_sr": (65.0, 67.0)},
            1: {"VGG19": (66.0, 69.0), "VGG19_sr_pruned0.5": (65.0, 67.5)},
            2: {"VGG19": (68.0, 68.0), "VGG19_sr_pruned0.5": (67.0, 68.5)}}
    for seed, runs in accs.items():
        for name, (pub, priv) in runs.items():
            d = tmp_path / f"seed{seed}" / name
            d.mkdir(parents=True)
            honest = {"PublicTest": pub, "PrivateTest": priv}
            if name == "VGG19":
                honest["PrivateTest_dedup"] = 67.0 - 0.5 * seed
            (d / "summary.json").write_text(json.dumps({"honest": honest}))
            (d / "config.json").write_text(json.dumps({"args": {"seed": seed}}))
    folders = [str(tmp_path / f"seed{k}") for k in accs]
    r = run_script("bench/seed_table.py", *folders)
    assert r.returncode == 0, r.stderr
    assert "| VGG19 | 67.00 +- 1.00 | 68.50 +- 0.50 | 66.50 +- 0.50 | 68.50 / 69.00 / 68.00 | - | - | - |" in r.stdout
    # pruned minus baseline per seed: -0.5, -1.5, +0.5 -> mean -0.50, std 1.00; 95% interval
    # -0.50 +- t(0.975, 2 df) 4.303 * 1.00 / sqrt(3) = -0.50 +- 2.48
    assert ("| VGG19_sr_pruned0.5 | 66.00 +- 1.00 | 68.00 +- 0.50 | - | 68.00 / 67.50 / 68.50 | -0.50 +- 1.00 | "
            "[-2.98, +1.98] | -0.50 / -1.50 / +0.50 |") in r.stdout
    assert "left out): VGG19_sr." in r.stdout
    r = run_script("bench/seed_table.py", folders[0], folders[0])
    assert r.returncode != 0 and "same seed" in r.stderr
    r = run_script("bench/seed_table.py", folders[0], str(tmp_path / "nowhere"))
    assert r.returncode != 0 and "nowhere is not a folder" in r.stderr


def write_run(d, rows, honest, args):
    """A finished run folder as fit() leaves it: metrics.csv, summary.json, config.json."""
    d.mkdir(parents=True)
    keys = ["epoch", "train_s", "eval_s", "PublicTest_acc"]
    (d / "metrics.csv").write_text(",".join(keys) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    (d / "summary.json").write_text(json.dumps({"honest": honest}))
    (d / "config.json").write_text(json.dumps({"args": args}))


def test_time_to_accuracy_reads_both_runs_and_checks_their_settings(tmp_path):
    """Target = the lower final PublicTest (60); fp32 reaches it at 10+2+10+2+10+2 = 36 s, the new
    default at 4+1+4+1 = 10 s: 3.60x. A linked folder made with other settings is refused."""
    fp32 = {"recipe": "cpu", "seed": 0, "width": 0.25, "amp": "none", "channels_last": False, "epochs": 3,
            "precision_why": "--amp none"}
    auto = {"recipe": "cpu-lean", "seed": 0, "width": 0.25, "amp": "bf16", "channels_last": True, "epochs": 3,
            "precision_why": "auto: this CPU has native bf16 arithmetic (AMX)"}
    write_run(tmp_path / "cpu_fp32", [(1, 10, 2, 50), (2, 10, 2, 58), (3, 10, 2, 61)],
              {"PublicTest": 61.0, "PrivateTest": 62.0}, fp32)
    write_run(tmp_path / "cpu-lean_auto", [(1, 4, 1, 55), (2, 4, 1, 60), (3, 4, 0, "")],
              {"PublicTest": 60.0, "PrivateTest": 61.5}, auto)
    r = run_script("bench/time_to_accuracy.py", "--out", str(tmp_path), "--data", "/nonexistent.h5")
    assert r.returncode == 0, r.stderr
    assert "min to PublicTest 60.00" in r.stdout and "**3.60x**" in r.stdout
    assert "| 62.000 |" in r.stdout and "| 61.500 |" in r.stdout and "bf16 autocast + channels_last" in r.stdout
    (tmp_path / "cpu-lean_auto" / "config.json").write_text(json.dumps({"args": dict(auto, seed=1)}))
    r = run_script("bench/time_to_accuracy.py", "--out", str(tmp_path), "--data", "/nonexistent.h5")
    assert r.returncode != 0 and "made with" in r.stderr and r.stderr.strip().count("\n") == 0


def test_estimate_time_prints_minutes_measured_here(synthetic_h5):
    r = run_script("estimate_time.py", "--data", synthetic_h5, "--width", "0.125", "--archs", "VGG11",
                   "--ft-epochs", "2", "--epochs", "3")
    assert r.returncode == 0, r.stderr
    assert "estimate for cpu" in r.stdout and "minutes in all" in r.stdout and "training images/s" in r.stdout
    r = run_script("estimate_time.py", "--data", "/nonexistent.h5")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0


LEASE_ENV = dict(WIDTH="0.0625", FT_EPOCHS="1", FER_MORE="--epochs 2", CK_MORE="--epochs 1 --folds 1", SEEDS="0 1",
                 SKIP_BENCH="1", OMP_NUM_THREADS="1", EXTRA="--amp none --test-curves",
                 OTHER_LANES="Resnet18 CK Published", PUB_EVAL_EVERY="2")


def lease_setup(tmp_path):
    """gpu_lease.sh's script path, a tiny CK+ HDF5 and the tiny lanes' environment."""
    from test_ckplus import make_ck_folder
    import preprocess_ckplus
    ck = tmp_path / "CK_data.h5"
    preprocess_ckplus.convert(str(make_ck_folder(tmp_path / "CK+48")), str(ck))
    env = dict(os.environ, PYTHON=sys.executable, **LEASE_ENV)
    return os.path.join(ROOT, "bench", "gpu_lease.sh"), ck, env


# two tests, not one: each starts several Python processes, and apart xdist can give them a worker each
@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("setsid") is None, reason="needs bash and setsid")
def test_gpu_lease_runs_every_lane(small_synthetic_h5, tmp_path):
    """bench/gpu_lease.sh, tiny and on the CPU: a lease is too scarce to find a broken lane on it.
    Two seeds (seed 1 in its own folder), every lane's result in results.tar.gz, the table."""
    import tarfile
    script, ck, env = lease_setup(tmp_path)
    work, res = tmp_path / "work", tmp_path / "res"
    r = subprocess.run(["bash", script, small_synthetic_h5, str(ck), str(work), str(res), "600"], env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    with tarfile.open(res / "results.tar.gz") as t:
        names = set(t.getnames())
    for run in ("VGG19", "VGG19_sr", "VGG19_sr_pruned0.5r8", "VGG19_sr_m0.5r8", "seed1/VGG19", "seed1/VGG19_sr_m0.5r8",
                "Resnet18", "CK+_VGG19/subject"):
        assert f"./{run}/summary.json" in names, run
    # the legacy folds only fit the real CK+48 class sizes: that lane fails, alone, and says so
    assert "lane CK_legacy: exit 2" in (work / "lease.log").read_text()
    assert not any(n.endswith((".pth", ".h5")) for n in names)  # no weights, no data come back
    assert json.loads((work / "seed1" / "VGG19" / "config.json").read_text())["args"]["seed"] == 1
    table = (work / "table.md").read_text()
    assert "| seed1/VGG19_sr_pruned0.5r8 |" in table and "| Resnet18 |" in table
    assert "deadline" not in (work / "lease.log").read_text()
    # the published-recipe lane (the accuracy study's GPU lane): its own folder, sparse scoring, test curves
    pub = json.loads((work / "VGG19_published" / "config.json").read_text())["args"]
    assert pub["recipe"] == "published" and pub["eval_every"] == 2 and pub["test_curves"] and pub["epochs"] == 2
    assert "PrivateTest" in json.loads((work / "VGG19_published" / "summary.json").read_text())["test_selected_max"]


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("setsid") is None, reason="needs bash and setsid")
def test_gpu_lease_deadline_stops_the_lanes_and_returns_the_snapshot(small_synthetic_h5, tmp_path):
    """A budget that ends mid-training: lanes stopped, the script still ends cleanly with a snapshot; the
    same command again (the second call of a lease, on the same machine) resumes the stopped run."""
    import tarfile
    script, ck, env = lease_setup(tmp_path)
    work, res = tmp_path / "work", tmp_path / "res"
    env.update(FER_MORE="--epochs 200", OTHER_LANES="", SEEDS="2", TAIL="0")
    t0 = time.time()
    # 30 s: enough for the lane to start and write its config.json on a busy 2-core machine (18 s was
    # not, beside two training runs), still far short of 200 epochs
    r = subprocess.run(["bash", script, small_synthetic_h5, str(ck), str(work), str(res), "30"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert time.time() - t0 < 120
    assert "deadline: stopping" in (work / "lease.log").read_text()
    with tarfile.open(res / "results.tar.gz") as t:
        assert "./seed2/VGG19/config.json" in t.getnames()
    assert (work / "seed2" / "VGG19" / "last.pth").exists()  # stays on the machine, never in the snapshot
    r = subprocess.run(["bash", script, small_synthetic_h5, str(ck), str(work), str(res), "30"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from" in (work / "lane_VGG19_seed2.log").read_text()


def test_length_table_reads_runs_of_several_lengths(synthetic_h5, tmp_path):
    """bench/length_table.py: one row per run, sorted by epochs, minutes relative to the shortest, a figure."""
    import mainpro_FER
    for e in (2, 1):
        mainpro_FER.main(["--data", synthetic_h5, "--out", str(tmp_path / f"len{e}"), "--model", "VGG11", "--width",
                          "0.125", "--device", "cpu", "--recipe", "cpu-lean", "--epochs", str(e), "--amp", "none"])
    r = run_script("bench/length_table.py", str(tmp_path / "len2"), str(tmp_path / "len1"),
                   "--figure", str(tmp_path / "len.png"))
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("| 1 |") or ln.startswith("| 2 |")]
    assert [ln[:5] for ln in rows] == ["| 1 |", "| 2 |"] and "| 1.00x |" in rows[0]
    assert (tmp_path / "len.png").exists()
    # minutes at measured per-epoch rates: 2 epochs, window 2 (cpu-lean's 4, cut to the run) -> 2 x 30 + 2 x 6 s
    r = run_script("bench/length_table.py", str(tmp_path / "len2"), "--epoch-seconds", "30,1,6")
    assert r.returncode == 0 and "| 1.2 | 1.00x | computed from --epoch-seconds |" in r.stdout, r.stdout
    r = run_script("bench/length_table.py", str(tmp_path / "len2"), "--epoch-seconds", "30,1")
    assert r.returncode == 2 and "--epoch-seconds" in r.stderr
    r = run_script("bench/length_table.py", str(tmp_path))
    assert r.returncode != 0 and "no summary.json" in r.stderr
    # earlier sessions' points come back from BENCHMARKS.md's own table and join a new run's row
    title = "Accuracy against training length, VGG19 w0.25"
    r = run_script("bench/length_table.py", str(tmp_path / "len2"), "--recorded", title, "--epoch-seconds", "30,1,6")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| 2 |" in r.stdout and "| 30 | 66.537 |" in r.stdout and "recorded in BENCHMARKS.md" in r.stdout
    assert "(recorded in" not in r.stdout  # rows this tool recorded before are not wrapped again
    r = run_script("bench/length_table.py", "--recorded", "No such section")
    assert r.returncode != 0 and "No such section" in r.stderr


def test_ingredients_are_paired_over_seeds_and_never_read_privatetest(synthetic_h5, tmp_path):
    """bench/ingredients.py: every variant and seed trained with --tune (PublicTest only), paired to the
    baseline of its own seed, the keep rule applied; a rerun trains nothing new."""
    args = ["bench/ingredients.py", "--data", synthetic_h5, "--out", str(tmp_path), "--width", "0.0625",
            "--epochs", "1", "--seeds", "0,1", "--variants", "cutmix", "--device", "cpu", "--extra", "--amp", "none"]
    r = run_script(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    pub = {(v, s): json.loads((tmp_path / v / f"seed{s}" / "summary.json").read_text())["honest"]
           for v in ("base", "cutmix") for s in (0, 1)}
    assert all(set(h) == {"PublicTest"} for h in pub.values())  # PrivateTest never scored
    gains = [pub[("cutmix", s)]["PublicTest"] - pub[("base", s)]["PublicTest"] for s in (0, 1)]
    row = next(ln for ln in r.stdout.splitlines() if ln.startswith("| cutmix |"))
    assert f"{gains[0]:+.2f} / {gains[1]:+.2f}" in row and ("| no |" in row or "| **yes** |" in row)
    cfg = json.loads((tmp_path / "cutmix" / "seed1" / "config.json").read_text())["args"]
    assert cfg["mix"] == "cutmix" and cfg["seed"] == 1 and cfg["tune"]
    r2 = run_script(*args)
    assert r2.returncode == 0 and "== " not in r2.stdout  # all finished: nothing retrained
    # the keep threshold from a spread measured over more seeds than the pairs (issue 26: cpu-120 has three)
    r3 = run_script(*args[:-3], "--spread", "0.24", *args[-3:])
    assert r3.returncode == 0 and "(0.48 points, from --spread)" in r3.stdout, r3.stderr[-2000:]
    r4 = run_script(*args[:-3], "--spread", "0")
    assert r4.returncode == 2 and "--spread 0.0" in r4.stderr.strip().splitlines()[-1]
