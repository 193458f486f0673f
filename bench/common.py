"""Shared by the benchmarks: machine description and writing a section of BENCHMARKS.md."""
import argparse
import os
import platform
import re
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import config  # noqa: E402
from data_io import DEFAULT_FER  # noqa: E402
import engine  # noqa: E402
import inference  # noqa: E402
import models  # noqa: E402
from dataset import H5Dataset  # noqa: E402
from utils import load_checkpoint, pick_device  # noqa: E402

DATA = os.path.join(ROOT, DEFAULT_FER)  # the benchmarks' default --data


def machine():
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        cpu = re.search(r"model name\s*:\s*(.*)", info).group(1)
        # the VMs report only "AMD EPYC": family/model tell one generation from another
        fam, mod = (re.search(rf"^{k}\s*:\s*(\d+)", info, re.M) for k in ("cpu family", "model"))
        if fam and mod:
            cpu += f" (family {fam.group(1)} model {mod.group(1)})"
    except (OSError, AttributeError):
        pass
    return f"CPU {cpu}, {os.cpu_count()} cores, torch {torch.__version__}"


def cpu_flags():
    """The CPU's bf16/AMX features as the benchmarks report them beside their figures."""
    try:
        with open("/proc/cpuinfo") as f:
            have = set(f.read().split())
    except OSError:
        return "CPU flags unknown"
    return "CPU flags " + ", ".join(f"{flag} {'yes' if flag in have else 'no'}"
                                    for flag in ("avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni"))


# BENCHMARKS.md is a reference by topic: "## <topic>" headings in this order, each holding "### <result>"
# sections; the contents list under "## Contents" is rebuilt from the headings on every write.
TOPICS = {
    "accuracy": "Accuracy on FER2013 at CPU scale",
    "slimming": "Network slimming",
    "latency": "Latency and deployment",
    "probabilities": "Probabilities",
    "gpu": "Full width on a GPU",
    "ckplus": "CK+",
    "data": "Data pipeline and evaluation cost",
}


def anchor(title):
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def contents(text):
    """``text`` with the block under '## Contents' rebuilt from its headings: one line per topic, its
    results linked after it."""
    topics = []
    for level, title in re.findall(r"^(##|###) (.+)$", text, re.M):
        link = f"[{title}](#{anchor(title)})"
        if level == "##" and title != "Contents":
            topics.append((f"**{link}**", []))
        elif level == "###" and topics:
            topics[-1][1].append(link)
    lines = [f"- {head}: {'; '.join(items)}" if items else f"- {head}" for head, items in topics]
    block = "## Contents\n\n" + "\n".join(lines) + "\n\n"
    return re.sub(r"^## Contents\n.*?(?=^## )", lambda _: block, text, count=1, flags=re.S | re.M)


def record(title, body, topic, where=None, path=None):
    """Write the result section '### title' of BENCHMARKS.md: replace it where it is (a rerun supersedes it;
    history is git's), else add it at the end of its topic. ``topic`` is a key of TOPICS; ``where`` (the
    machine) opens the section, so every section names the machine it was measured on."""
    path = path or os.path.join(ROOT, "BENCHMARKS.md")
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\n## Contents\n\n"
    if "## Contents\n" not in text:
        text = text.rstrip() + "\n\n## Contents\n\n"
    head = TOPICS[topic]
    section = f"### {title}\n\n" + (f"Machine: {where}.\n\n" if where else "") + f"{body.strip()}\n\n"
    # a section ends where the next result or topic heading starts
    pattern = re.compile(rf"^### {re.escape(title)}\n.*?(?=^###? |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        if not re.search(rf"^## {re.escape(head)}\n", text, re.M):
            text = text.rstrip() + f"\n\n## {head}\n\n"
        topic_pat = re.compile(rf"(^## {re.escape(head)}\n.*?)(?=^## |\Z)", re.S | re.M)
        text = topic_pat.sub(lambda m: m.group(1).rstrip() + "\n\n" + section, text, count=1)
    text = contents(text).rstrip() + "\n"
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote section '{title}' ({head}) of {path}")


def recorded_rows(title, path=None):
    """The rows of the first table in section '### title' of BENCHMARKS.md, each a dict keyed by the table's header.

    BENCHMARKS.md outlives the run folders (they stay on the machine that trained them), so a table that
    grows over sessions reads its earlier rows from here. Raises SystemExit naming the file where the
    section or its table is missing."""
    path = path or os.path.join(ROOT, "BENCHMARKS.md")
    text = open(path).read() if os.path.exists(path) else ""
    m = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^###? |\Z)", text, re.S | re.M)
    first = re.search(r"(?:^\|.*\|\n)+", m.group(1), re.M) if m else None  # the section's first table
    table = first.group(0).splitlines() if first else []
    if len(table) < 2:
        raise SystemExit(f"{path}: no table in section '### {title}'")
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in table]
    return [dict(zip(cells[0], row)) for row in cells[2:]]  # cells[1] is the |---| line


def run_measured(code):
    """Run ``code`` (which sets ``secs``) in a fresh python; return (secs, peak RSS MB of that process)."""
    # VmHWM is this process image's own peak (ru_maxrss would include the forked parent's pages)
    wrapper = f"import sys\nsys.path.insert(0, {ROOT!r})\n{code}\n" \
              "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n" \
              "print(secs, int(hwm) / 1024)"
    r = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, check=True)
    secs, mb = r.stdout.strip().splitlines()[-1].split()
    return float(secs), float(mb)


def now():
    return time.perf_counter()


def private_test_scores(data_path, run_dirs, device="auto"):
    """(checkpoint, PrivateTest 10-crop accuracy) of each run folder's best.pth, the split loaded once.

    For the final rows of a sweep only: PrivateTest reports, it never chooses.
    """
    dev = pick_device(device)
    x, y = H5Dataset(data_path, kind="FER").load("PrivateTest", dev)
    out = []
    for d in run_dirs:
        ck = load_checkpoint(os.path.join(d, "best.pth"))
        net = models.model_from_checkpoint(ck).to(dev)
        out.append((ck, inference.evaluate(net, x, y, config.eval_batch_size("auto", dev))["acc"]))
    return out


def folder_table_main(doc, make_table, folder_help, topic):
    """The command line of the tables that compare run folders: FOLDER... [--write TITLE].

    ``make_table(folders)`` returns markdown; it is printed, and recorded in BENCHMARKS.md with --write.
    """
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("folders", nargs="+", metavar="FOLDER", help=folder_help)
    ap.add_argument("--write", metavar="TITLE", help="record the table in BENCHMARKS.md under this title")
    args = ap.parse_args()
    text = make_table(args.folders)
    print(text)
    if args.write:
        record(args.write, text, topic)


def train_pass_seconds(model, x, y, dtype=None, channels_last=False, teacher=None):
    """Seconds for one training pass over (x, y) through engine.train_one_epoch (batches of 128:
    augmentation, forward, backward, SGD; distilling from ``teacher`` if given), after a warm-up
    pass of 256 images so kernel choice is not timed. ``model`` is already in its memory format."""
    args = argparse.Namespace(**config.CPU_FER, sr=False, channels_last=channels_last, kd_alpha=0.5, kd_t=4.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    g = engine.make_generators(0, x.device)
    engine.train_one_epoch(model, x[:256], y[:256], opt, sched, args, g, dtype=dtype, teacher=teacher)
    t = now()
    engine.train_one_epoch(model, x, y, opt, sched, args, g, dtype=dtype, teacher=teacher)
    return now() - t
