"""conftest.run_script runs the repo's scripts inside the test process; what a test sees must be what a
fresh interpreter gives: exit status, stdout, stderr (one-line errors, argparse's usage, tracebacks,
warnings), the working directory, and nothing left changed behind it."""
import os
import sys

import pytest
import torch

from conftest import ROOT, _run_in_process, run_script


def both(*args, cwd=ROOT):
    return run_script(*args, cwd=cwd), run_script(*args, cwd=cwd, fresh=True)


@pytest.mark.parametrize("args", [
    ("preprocess_fer2013.py", "--locate"),                        # success, a line on stdout
    ("preprocess_fer2013.py", "--csv", "nowhere.csv"),            # cli_error: one line, status 2
    ("mainpro_FER.py", "--width", "wide"),                        # argparse: usage and status 2
    ("bench/seed_table.py", "not-a-folder"),                      # sys.exit("...") from a bench script
])
def test_in_process_equals_a_fresh_interpreter(args, tmp_path):
    inproc, fresh = both(*args, cwd=tmp_path) if args[0] == "preprocess_fer2013.py" else both(*args)
    assert (inproc.returncode, inproc.stdout, inproc.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)


def test_tracebacks_warnings_and_state(tmp_path):
    """An uncaught error ends with Python's traceback and status 1; a warning reaches stderr; the working
    directory, sys.path, sys.argv and torch's thread count are the test's again afterwards."""
    script = tmp_path / "boom.py"
    script.write_text("import os, sys, warnings, torch\nwarnings.warn('careful')\ntorch.set_num_threads(3)\n"
                      "print(os.getcwd(), sys.argv[1])\nraise ValueError('bad ' + sys.argv[1])\n")
    before = (os.getcwd(), list(sys.path), list(sys.argv), torch.get_num_threads())
    r = _run_in_process(str(script), [str(script), "x"], str(tmp_path))
    assert r.returncode == 1 and r.stdout == f"{tmp_path} x\n"
    assert "UserWarning: careful" in r.stderr
    assert r.stderr.rstrip().endswith("ValueError: bad x") and "Traceback (most recent call last)" in r.stderr
    assert (os.getcwd(), list(sys.path), list(sys.argv), torch.get_num_threads()) == before
