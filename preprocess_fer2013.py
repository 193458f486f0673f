"""FER2013 (Kaggle fer2013.csv, .csv.gz or the original fer2013.tar.gz) -> data/data.h5.

    python preprocess_fer2013.py                                   # data/fer2013.csv -> data/data.h5
    python preprocess_fer2013.py --csv fer2013.tar.gz --out data/data.h5
    python preprocess_fer2013.py --ferplus data/fer2013new.csv     # FER+ majority-vote labels
    python preprocess_fer2013.py --synthetic 3000 --out data/synthetic.h5   # drawn faces, no download

The CSV is parsed in chunks with vectorised numpy (no Python loop over pixels): the real
296 MB file takes about a second and little memory (see BENCHMARKS.md). Any bad input stops
with one error line naming the file and line; the output is written to a temporary file and
renamed only when complete, so a failed run never leaves a half-written data.h5.
"""
import argparse
import collections
import csv
import gzip
import os
import tarfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np

from data_io import (FER_CLASSES, FER_SPLITS, FERPLUS_CLASSES, DataError, atomic_output, cli_error,
                     synthetic_faces, write_meta)

HEADER = "emotion,pixels,Usage"
NPIX = 48 * 48
USAGE_CODE = {name.encode(): i for i, name in enumerate(FER_SPLITS)}
WHERE_TO_GET = ("download FER2013 from Kaggle (challenges-in-representation-learning-facial-expression-"
                "recognition-challenge, file fer2013.tar.gz or fer2013.csv) and put fer2013.csv in data/, "
                "or pass --csv PATH")


# ----------------------------------------------------------------------------------------
# Opening the source: plain CSV, gzip'd CSV, or a tar(.gz) archive holding fer2013.csv

def open_source(path):
    """Return a binary stream of the CSV text inside ``path`` (csv, csv.gz, tar, tar.gz)."""
    if not os.path.exists(path):
        raise DataError(f"{path} not found: {WHERE_TO_GET}")
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder, expected fer2013.csv (or .csv.gz / .tar.gz)")
    with open(path, "rb") as f:
        magic = f.read(2)
    name = path.lower()
    is_tar = name.endswith((".tar", ".tar.gz", ".tgz"))
    if not is_tar and magic == b"\x1f\x8b":
        try:  # a gzip'd tar without the usual extension is still accepted
            is_tar = tarfile.is_tarfile(path)
        except Exception:
            is_tar = False
    if is_tar:
        try:
            tar = tarfile.open(path, "r:*")
            members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".csv")]
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt or unreadable tar archive ({e})") from None
        pick = [m for m in members if os.path.basename(m.name) == "fer2013.csv"] or members
        if not pick:
            raise DataError(f"{path}: archive holds no fer2013.csv")
        return tar.extractfile(pick[0])
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb")


def read_chunks(stream, path, chunk_bytes):
    """Yield (first_line_number, bytes of whole lines) after checking the header line."""
    def read(n):
        try:
            return stream.read(n)
        except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
            raise DataError(f"{path}: corrupt compressed data ({e})") from None

    head = read(4096)
    if not head:
        raise DataError(f"{path} is empty: {WHERE_TO_GET}")
    nl = head.find(b"\n")
    while nl < 0:
        more = read(4096)
        if not more:
            break
        head += more
        nl = head.find(b"\n")
    first = (head if nl < 0 else head[:nl]).decode("utf-8", "replace").lstrip("\ufeff").strip()
    if first.replace(" ", "") != HEADER:
        raise DataError(f"{path} line 1: header is {first[:60]!r}, expected {HEADER!r} (is this fer2013.csv?)")
    buf, line_no = (b"" if nl < 0 else head[nl + 1:]), 2
    while True:
        more = read(chunk_bytes)
        if more:
            buf += more
            cut = buf.rfind(b"\n") + 1
            if cut == 0:
                continue
            block, buf = buf[:cut], buf[cut:]
        else:
            block, buf = buf, b""
            if block and not block.endswith(b"\n"):
                block += b"\n"
        if block:
            yield line_no, block
            line_no += block.count(b"\n")
        if not more:
            return


# ----------------------------------------------------------------------------------------
# Vectorised parsing of one block of complete lines

def parse_block(block, line_no, path):
    """Parse ``emotion,pixels,Usage`` lines -> (labels int64 [n], usage uint8 [n], pixels uint8 [n, 2304]).

    ``line_no`` is the file line number of the block's first line, for error messages.
    """
    if b"\r" in block:
        block = block.replace(b"\r\n", b"\n")
    b = np.frombuffer(block, np.uint8)
    d = b - np.uint8(48)  # digits -> 0..9, everything else wraps to >= 10
    isd = d < 10
    # every byte that is neither digit nor space: newlines, commas, Usage letters, bad bytes.
    # A few per line, so newlines and commas are found among them, not by more full passes.
    other = np.flatnonzero(~isd & (b != 32))
    other_byte = b[other]
    ends = other[other_byte == 10]  # one '\n' per line
    commas = other[other_byte == 44]
    starts = np.r_[0, ends[:-1] + 1]
    blank = ends == starts
    if blank.any():  # blank lines are harmless: drop them, keep numbering right
        keep = ~blank
        lines = np.arange(len(ends))[keep] + line_no
        ends, starts = ends[keep], starts[keep]
    else:
        lines = np.arange(len(ends)) + line_no
    n = len(ends)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint8), np.zeros((0, NPIX), np.uint8)

    def where(i):
        return f"{path} line {lines[i]}"

    per_line = np.diff(np.r_[0, np.searchsorted(commas, ends)])
    first_commas = np.searchsorted(commas, starts)
    if (per_line != 2).any():
        i = int(np.argmax(per_line != 2))
        raise DataError(f"{where(i)}: expected 3 fields emotion,pixels,Usage, found {per_line[i] + 1}")
    c1, c2 = commas[first_commas], commas[first_commas + 1]

    # emotion label: one digit 0-6 on the fast path; anything else is checked line by line
    labels = b[starts].astype(np.int64) - 48
    odd = np.flatnonzero((c1 - starts != 1) | (labels < 0) | (labels > 6))
    for i in odd:
        field = block[starts[i]:c1[i]].decode("utf-8", "replace").strip()
        try:
            value = int(field)
        except ValueError:
            raise DataError(f"{where(i)}: emotion label {field!r} is not an integer 0-6") from None
        if not 0 <= value <= 6:
            raise DataError(f"{where(i)}: unknown emotion label {value} (expected 0-6)")
        labels[i] = value

    # Usage: a handful of distinct strings, looked up per line (35k lookups, not per pixel)
    usage = np.empty(n, np.uint8)
    for i in range(n):
        code = USAGE_CODE.get(block[c2[i] + 1:ends[i]].strip())
        if code is None:
            field = block[c2[i] + 1:ends[i]].decode("utf-8", "replace")
            raise DataError(f"{where(i)}: unknown Usage {field!r} (expected one of {', '.join(FER_SPLITS)})")
        usage[i] = code

    # pixels: digit runs between the two commas, values from up to three digits per run
    isd[starts] = False  # the label digit is not a pixel
    for i in odd:
        isd[starts[i]:c1[i]] = False
    line_of = np.searchsorted(ends, other)
    inside = (other > c1[line_of]) & (other < c2[line_of])
    if inside.any():
        k = int(np.argmax(inside))
        i, p = line_of[k], other[k]
        lo = block.rfind(b" ", c1[i], p) + 1 or c1[i] + 1
        hi = min([q for q in (block.find(b" ", p, c2[i]), c2[i]) if q >= 0])
        tok = block[max(lo, c1[i] + 1):hi].decode("utf-8", "replace")
        raise DataError(f"{where(i)}: pixel {tok!r} is not an integer 0-255")
    tok_end = np.flatnonzero(isd[:-1] & ~isd[1:])  # last digit of each pixel value
    counts = np.diff(np.r_[0, np.searchsorted(tok_end, ends)])
    if (counts != NPIX).any():
        i = int(np.argmax(counts != NPIX))
        raise DataError(f"{where(i)}: expected {NPIX} pixels, found {counts[i]}")
    # value at every position as if it ended a number: contiguous shifted sums, one gather after
    dd = d * isd  # digit values, 0 elsewhere
    val = dd.astype(np.uint16)
    val[1:] += dd[:-1] * np.uint8(10)
    pair = isd[:-1] & isd[1:]  # pair[j]: bytes j and j+1 are both digits
    val[2:] += (dd[:-2] * pair[1:]).astype(np.uint16) * np.uint16(100)
    values = val[tok_end]
    four = pair[:-2] & pair[2:]  # a run of four digits is never 0-255
    bad = values > 255
    if bad.any() or four.any():
        k = int(np.argmax(bad)) if bad.any() else int(np.searchsorted(tok_end, np.argmax(four) + 3))
        i = k // NPIX
        raise DataError(f"{where(i)}: pixel value out of range 0-255 (pixel {k % NPIX + 1} of the row)")
    return labels, usage, values.astype(np.uint8).reshape(n, NPIX)


# ----------------------------------------------------------------------------------------
# FER+ labels

FERPLUS_HEADER = ["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger",
                  "disgust", "fear", "contempt", "unknown", "NF"]


def read_ferplus(path):
    """fer2013new.csv -> (label int64 [N], -1 where the majority vote is unknown or not-a-face; usage list)."""
    if not os.path.exists(path):
        raise DataError(f"{path} not found: get fer2013new.csv from Microsoft's FERPlus repository")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DataError(f"{path} is empty")
    if [c.strip() for c in rows[0]] != FERPLUS_HEADER:
        raise DataError(f"{path} line 1: header is {','.join(rows[0])[:80]!r}, expected {','.join(FERPLUS_HEADER)!r}")
    labels, usage = np.empty(len(rows) - 1, np.int64), []
    for i, row in enumerate(rows[1:]):
        try:
            votes = np.array([int(v) for v in row[2:12]])
            if len(votes) != 10:
                raise ValueError
        except ValueError:
            raise DataError(f"{path} line {i + 2}: expected 10 integer vote counts") from None
        top = int(np.argmax(votes))
        labels[i] = top if top < len(FERPLUS_CLASSES) else -1
        usage.append(row[0].strip())
    return labels, usage


# ----------------------------------------------------------------------------------------

def parsed_blocks(stream, path, chunk_bytes, workers):
    """Parse blocks on ``workers`` threads (numpy releases the GIL), yielded in file order.

    At most ``workers + 1`` blocks are in flight, so memory stays bounded whatever the file
    size; the first bad line in file order is the one reported.
    """
    with ThreadPoolExecutor(workers) as ex:
        pending = collections.deque()
        for line_no, block in read_chunks(stream, path, chunk_bytes):
            pending.append(ex.submit(parse_block, block, line_no, path))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def convert(csv_path, out_path, ferplus=None, chunk_bytes=4 << 20, workers=None):
    """Parse ``csv_path`` and write the FER-layout HDF5 atomically; return rows per split."""
    workers = workers or min(4, os.cpu_count() or 1)
    plus_labels = plus_usage = None
    if ferplus:
        plus_labels, plus_usage = read_ferplus(ferplus)
    stream = open_source(csv_path)
    counts = {s: 0 for s in FER_SPLITS}
    row = 0
    with stream, atomic_output(out_path) as tmp, h5py.File(tmp, "w") as h5:
        sets = {}
        for s in FER_SPLITS:
            sets[s] = (h5.create_dataset(f"{s}_pixel", (0, NPIX), np.uint8, maxshape=(None, NPIX), chunks=(256, NPIX)),
                       h5.create_dataset(f"{s}_label", (0,), np.int64, maxshape=(None,), chunks=(4096,)))
        for labels, usage, pixels in parsed_blocks(stream, csv_path, chunk_bytes, workers):
            n = len(labels)
            if plus_labels is not None:
                if row + n > len(plus_labels):
                    raise DataError(f"{ferplus}: has {len(plus_labels)} rows, fewer than {csv_path}")
                for i in range(n):  # FER+ rows must be the same images in the same order
                    if plus_usage[row + i] != FER_SPLITS[usage[i]]:
                        raise DataError(f"{ferplus} line {row + i + 2}: Usage {plus_usage[row + i]!r} does not "
                                        f"match {csv_path} ({FER_SPLITS[usage[i]]}); the files are not row-aligned")
                labels = plus_labels[row:row + n]
            row += n
            for code, s in enumerate(FER_SPLITS):
                keep = usage == code
                if plus_labels is not None:
                    keep &= labels >= 0
                k = int(keep.sum())
                if k:
                    px, lb = sets[s]
                    px.resize(counts[s] + k, 0)
                    lb.resize(counts[s] + k, 0)
                    px[counts[s]:] = pixels[keep]
                    lb[counts[s]:] = labels[keep]
                    counts[s] += k
        if row == 0:
            raise DataError(f"{csv_path} has a header but no data rows")
        empty = [s for s in FER_SPLITS if counts[s] == 0]
        if empty:  # training selects on PublicTest and reports PrivateTest: all three are needed
            raise DataError(f"{csv_path}: no {' or '.join(empty)} rows (Usage column); FER2013 needs rows of "
                            f"{', '.join(FER_SPLITS)}; nothing written")
        if plus_labels is not None and row != len(plus_labels):
            raise DataError(f"{ferplus} has {len(plus_labels)} rows but {csv_path} has {row}; not row-aligned")
        if plus_labels is None:
            write_meta(h5, "FER2013", FER_CLASSES, source=os.path.basename(csv_path))
        else:
            write_meta(h5, "FER2013+", FERPLUS_CLASSES, source=os.path.basename(ferplus))
    return counts


def write_synthetic(out_path, n, seed=0):
    """Write ``n`` drawn faces in the FER layout, split 80/10/10, labelled SYNTHETIC."""
    pixels, labels = synthetic_faces(n, seed)
    bounds = [0, int(0.8 * n), int(0.9 * n), n]
    counts = {}
    with atomic_output(out_path) as tmp, h5py.File(tmp, "w") as h5:
        for s, lo, hi in zip(FER_SPLITS, bounds[:-1], bounds[1:]):
            h5.create_dataset(f"{s}_pixel", data=pixels[lo:hi].reshape(-1, NPIX))
            h5.create_dataset(f"{s}_label", data=labels[lo:hi])
            counts[s] = hi - lo
        write_meta(h5, "SYNTHETIC", FER_CLASSES, synthetic=True, source=f"synthetic_faces(n={n}, seed={seed})")
    return counts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", default="data/fer2013.csv", metavar="PATH",
                    help="fer2013.csv, fer2013.csv.gz or fer2013.tar.gz (default: data/fer2013.csv)")
    ap.add_argument("--out", default=None, metavar="FILE",
                    help="output HDF5 (default: data/data.h5; data/synthetic.h5 with --synthetic)")
    ap.add_argument("--ferplus", default=None, metavar="CSV",
                    help="fer2013new.csv: replace labels by the FER+ majority vote (default: off)")
    ap.add_argument("--synthetic", type=int, default=0, metavar="N",
                    help="write N procedurally drawn faces instead of reading FER2013 (default: 0 = off)")
    ap.add_argument("--seed", type=int, default=0, metavar="S", help="seed for --synthetic (default: 0)")
    args = ap.parse_args(argv)
    try:
        if args.synthetic:
            if args.synthetic < 10:
                raise DataError(f"--synthetic {args.synthetic}: need at least 10 images")
            out = args.out or "data/synthetic.h5"
            counts = write_synthetic(out, args.synthetic, args.seed)
            print(f"SYNTHETIC data (drawn faces, not FER2013): {counts} -> {out}")
        else:
            out = args.out or "data/data.h5"
            counts = convert(args.csv, out, args.ferplus)
            print(f"{'FER2013+' if args.ferplus else 'FER2013'}: {counts} -> {out}")
    except DataError as e:
        cli_error(str(e))
    except OSError as e:  # unwritable output folder, disk full, ...
        cli_error(f"{e.filename or args.out}: {e.strerror or e}")


if __name__ == "__main__":
    main()
