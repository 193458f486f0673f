"""Shared fixtures: small generated data sets, so the suite needs no download."""
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # several workers share the cores: one OpenMP thread each (and in the scripts they start),
    # or they slow each other down many times over
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch
    torch.set_num_threads(1)
# Tests that need the real data sets read them from here (CI may point it at ../shared/datasets).
REAL_DATA = os.environ.get("FER_REAL_DATA", "")
SMALL_VGG = [8, "M", 16, "M", 32, "M", 32, "M", 32, "M"]  # a VGG cfg small enough for CPU tests


# The longest tests start first, so that on two xdist workers the rest of the suite runs beside
# them instead of after them (./test.sh --durations=10 shows the current order of cost).
LONG_FIRST = ("test_protocol_runs_every_stage_resumes_and_reprunes", "test_torchrun_resume_equals_uninterrupted",
              "test_protocol_compute_aware_rules", "test_real_fer2013_as_icml_and_as_image_folders",
              "test_sparsity_sweep_reads_privatetest_only_in_final", "test_released_weights_call_real_happy_faces_happy")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    # by the function's name, so every parametrisation of a long test counts; stable: the rest keep their order
    items.sort(key=lambda item: rank.get(getattr(item, "originalname", item.name), len(LONG_FIRST)))


def run_script(*args, cwd=ROOT, timeout=600, fresh=False):
    """Run one of the repo's scripts as a user would (``python SCRIPT ARGS`` in ``cwd``); returns a
    CompletedProcess with its exit status, stdout and stderr.

    The repo's own .py scripts run in this process: as ``__main__`` (runpy), with the ``sys.argv``,
    working directory, ``sys.path[0]`` and exit status a fresh interpreter would give them, their
    warnings and uncaught tracebacks written to the captured stderr as Python would print them. A new
    interpreter costs about 2 s of CPU here, nearly all of it importing torch, and the suite runs
    scripts many dozens of times. ``fresh=True`` (and any file outside the repo, any non-.py
    argument) starts a real process: for what only a process shows (C-level output, spawned children
    that re-import ``__main__``, a timeout)."""
    script = os.path.join(cwd, args[0])
    inside = os.path.realpath(script).startswith(ROOT + os.sep) and script.endswith(".py")
    if fresh or not inside:
        return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return _run_in_process(os.path.realpath(script), [str(a) for a in args], cwd)


def _run_in_process(script, argv, cwd):
    import contextlib
    import io
    import runpy
    import traceback
    import warnings
    import torch
    out, err = io.StringIO(), io.StringIO()
    saved = (os.getcwd(), list(sys.path), sys.argv, torch.get_num_threads(), torch.get_default_dtype(),
             torch.are_deterministic_algorithms_enabled())

    def show(message, category, filename, lineno, file=None, line=None):
        err.write(warnings.formatwarning(message, category, filename, lineno, line))
    code = 0
    try:
        os.chdir(cwd)
        sys.argv, sys.path[0:0] = argv, [os.path.dirname(script)]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            # a fresh interpreter's filters (not pytest's capture): what a user would see on stderr
            warnings.resetwarnings()
            for category in (ResourceWarning, ImportWarning, PendingDeprecationWarning, DeprecationWarning):
                warnings.filterwarnings("ignore", category=category)
            warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
            warnings.showwarning = show
            try:
                runpy.run_path(script, run_name="__main__")
            except SystemExit as e:  # what the interpreter does with each kind of exit value
                if e.code is None or isinstance(e.code, int):
                    code = e.code or 0
                else:
                    err.write(f"{e.code}\n")
                    code = 1
            except Exception:  # an uncaught error: a traceback and status 1 (Ctrl-C still stops the suite)
                err.write(traceback.format_exc())
                code = 1
    finally:
        os.chdir(saved[0])
        sys.path[:], sys.argv = saved[1], saved[2]
        torch.set_num_threads(saved[3])
        torch.set_default_dtype(saved[4])
        torch.use_deterministic_algorithms(saved[5])
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def fer_rows(n=30, seed=0):
    """Random FER-format rows: list of (label, pixels uint8 [2304], usage)."""
    rng = np.random.default_rng(seed)
    usages = ["Training"] * (n - 2 * (n // 5)) + ["PublicTest"] * (n // 5) + ["PrivateTest"] * (n // 5)
    rng.shuffle(usages)
    return [(int(rng.integers(0, 7)), rng.integers(0, 256, 2304).astype(np.uint8), u) for u in usages]


def write_csv(path, rows, header="emotion,pixels,Usage", newline="\n"):
    with open(path, "w", newline="") as f:
        f.write(header + newline)
        for label, px, usage in rows:
            f.write(f"{label},{' '.join(map(str, px))},{usage}{newline}")
    return path


@pytest.fixture(scope="session")
def synthetic_h5(tmp_path_factory):
    """A small synthetic FER-layout file (the built-in drawn faces)."""
    import preprocess_fer2013
    path = tmp_path_factory.mktemp("synth") / "synthetic.h5"
    preprocess_fer2013.write_synthetic(str(path), 1400, seed=0)
    return str(path)


@pytest.fixture(scope="session")
def small_synthetic_h5(tmp_path_factory):
    """A third of synthetic_h5 (480 faces): for the tests that only check plumbing across many processes."""
    import preprocess_fer2013
    path = tmp_path_factory.mktemp("synth_small") / "synthetic.h5"
    preprocess_fer2013.write_synthetic(str(path), 480, seed=0)
    return str(path)


@pytest.fixture(scope="session")
def tiny_checkpoint(synthetic_h5, tmp_path_factory):
    """best.pth of a narrow VGG11 trained for a few epochs on the synthetic faces, in fp32 so that
    the parity checks built on it (ONNX, predict, hub) mean the same on every CPU."""
    import mainpro_FER
    out = tmp_path_factory.mktemp("tiny_run")
    mainpro_FER.main(["--data", synthetic_h5, "--out", str(out), "--model", "VGG11", "--width", "0.125",
                      "--device", "cpu", "--recipe", "fast", "--epochs", "5", "--eval-every", "5", "--amp", "none"])
    return str(out / "best.pth")


@pytest.fixture(scope="session")
def real_fer_h5(tmp_path_factory):
    """The real FER2013 as HDF5, made once per session from $FER_REAL_DATA/fer2013.med.xz; skips without it."""
    packed = os.path.join(REAL_DATA, "fer2013.med.xz")
    if not os.path.exists(packed):
        pytest.skip("real FER2013 not available (set FER_REAL_DATA to the folder with fer2013.med.xz)")
    import preprocess_fer2013
    d = tmp_path_factory.mktemp("real_fer")
    tool = os.path.join(REAL_DATA, "..", "tools", "fer2013_pack.py")
    r = run_script(tool, "unpack", packed, str(d / "fer2013.csv"))
    assert r.returncode == 0, r.stderr
    preprocess_fer2013.convert(str(d / "fer2013.csv"), str(d / "data.h5"))
    os.remove(d / "fer2013.csv")
    return str(d / "data.h5")
