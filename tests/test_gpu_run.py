"""bench/gpu_run.sh end to end on a small generated FER-format CSV: every stage, then a rerun that resumes."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, fer_rows, write_csv


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_run_script_runs_every_stage_and_resumes(tmp_path):
    csv = write_csv(tmp_path / "fer2013.csv", fer_rows(150, seed=4))
    out = tmp_path / "run"
    env = dict(os.environ, PYTHON=sys.executable, WIDTH="0.125", EPOCHS="2", FT_EPOCHS="1", RESNET_EPOCHS="1",
               SKIP_BENCH="1", TQDM_DISABLE="1")
    cmd = ["bash", os.path.join(ROOT, "bench", "gpu_run.sh"), str(csv), str(out)]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-2000:]
    table = (out / "table.md").read_text()
    for run in ("FER2013_VGG19 ", "FER2013_VGG19_pruned0.5", "FER2013_VGG19_pruned0.7", "FER2013_Resnet18"):
        assert f"| {run.strip()} |" in table, run
    for d in ("FER2013_VGG19", "FER2013_VGG19_pruned0.5", "FER2013_VGG19_pruned0.7", "FER2013_Resnet18"):
        assert (out / d / "metrics.csv").exists() and (out / d / "best.pth").exists()
    # the rerun finds every stage done: no training, same table
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "nothing to do" in again.stdout and "epoch   1" not in again.stdout
    assert (out / "table.md").read_text() == table
