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
import json
import os
import sys
import tarfile
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np

from data_io import (DEFAULT_FER, FER_CLASSES, FER_SPLITS, FERPLUS_CLASSES, DataError, atomic_output, cli_error,
                     duplicate_summary, format_duplicates, row_digests, synthetic_faces, write_meta)
from faces import read_face48

COLUMNS = ("emotion", "pixels", "Usage")  # read by name: fer2013.csv has this order, icml_face_data.csv not
NPIX = 48 * 48
CSV_NAMES = ("fer2013.csv", "icml_face_data.csv")  # the files that hold all three splits, preferred in this order
PARTIAL = {"train.csv": "holds only the Training rows (no Usage column)",
           "test.csv": "holds the test images without labels",
           "example_submission.csv": "is a submission template, not data"}
USE_INSTEAD = ("use fer2013.csv or icml_face_data.csv from the same Kaggle download (or pass the "
               "competition's .zip / fer2013.tar.gz itself)")
USAGE_CODE = {name.encode(): i for i, name in enumerate(FER_SPLITS)}
WHERE_TO_GET = ("download FER2013 from Kaggle (challenges-in-representation-learning-facial-expression-"
                "recognition-challenge: the .zip, fer2013.tar.gz, fer2013.csv or icml_face_data.csv) and put "
                "fer2013.csv in data/, or pass --csv PATH (the image-folder version: --images DIR)")


# ----------------------------------------------------------------------------------------
# Opening the source: plain CSV, gzip'd CSV, a tar(.gz) archive, or the competition's zip

def pick_member(names, where):
    """The archive member to read: fer2013.csv, then icml_face_data.csv; one error line otherwise."""
    by_base = {}
    for n in names:
        by_base.setdefault(os.path.basename(n).lower(), n)
    for want in CSV_NAMES:
        if want in by_base:
            return by_base[want]
    csvs = sorted(os.path.basename(n) for n in names if n.lower().endswith(".csv"))
    held = f"it holds {', '.join(csvs)}" if csvs else "it holds no CSV"
    raise DataError(f"{where}: no fer2013.csv or icml_face_data.csv inside ({held}); {USE_INSTEAD}")


def open_tar(path, fileobj=None):
    """(stream, name) of the FER CSV inside a tar archive (a path, or a stream from a zip)."""
    where = path if fileobj is None else f"{path}:fer2013.tar.gz"
    try:
        if fileobj is None:
            tar = tarfile.open(path, "r:*")
            names = [m.name for m in tar.getmembers() if m.isfile()]
            name = pick_member(names, where)
            return tar.extractfile(name), f"{path}:{name}"
        tar = tarfile.open(fileobj=fileobj, mode="r|*")  # a zip member cannot seek: read it as a stream
        seen = []
        for m in tar:  # streamed, so the first usable CSV is taken (the Kaggle tar holds only fer2013.csv)
            if m.isfile() and os.path.basename(m.name).lower() in CSV_NAMES:
                return tar.extractfile(m), f"{where}:{m.name}"
            seen.append(m.name)
        raise DataError(f"{where}: no fer2013.csv or icml_face_data.csv inside (it holds "
                        f"{', '.join(os.path.basename(n) for n in seen) or 'nothing'}); {USE_INSTEAD}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{where}: corrupt or unreadable tar archive ({e})") from None


def open_zip(path):
    """(stream, name) of the FER CSV inside the competition's zip (or the tar.gz it holds)."""
    try:
        zf = zipfile.ZipFile(path)
        names = [i.filename for i in zf.infolist() if not i.is_dir()]
        try:
            name = pick_member(names, path)
        except DataError:
            tars = [n for n in names if os.path.basename(n).lower() in ("fer2013.tar.gz", "fer2013.tgz", "fer2013.tar")]
            if not tars and any(n.lower().startswith(("train/", "test/")) and "/" in n[6:] for n in names):
                raise DataError(f"{path} holds the image-folder FER2013 (train/<class>/, test/<class>/), not a "
                                "CSV: unzip it and pass --images DIR") from None
            if not tars:
                raise
            return open_tar(path, zf.open(tars[0]))
        return zf.open(name), f"{path}:{name}"
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or unreadable zip archive ({e})") from None


def open_source(path):
    """Return (binary stream of the CSV text, name for messages) for csv, csv.gz, tar(.gz) or zip."""
    if not os.path.exists(path):
        raise DataError(f"{path} not found: {WHERE_TO_GET}")
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder, expected fer2013.csv (or .csv.gz / .tar.gz / .zip); "
                        "for the image-folder version pass --images DIR")
    with open(path, "rb") as f:
        magic = f.read(4)
    name = path.lower()
    if magic[:2] == b"PK" or name.endswith(".zip"):
        return open_zip(path)
    is_tar = name.endswith((".tar", ".tar.gz", ".tgz"))
    if not is_tar and magic[:2] == b"\x1f\x8b":
        try:  # a gzip'd tar without the usual extension is still accepted
            is_tar = tarfile.is_tarfile(path)
        except Exception:
            is_tar = False
    if is_tar:
        return open_tar(path)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb"), path
    return open(path, "rb"), path


# Where people put FER2013: the names Kaggle ships, preferred in this order; then any other
# archive or CSV in the folder that turns out to hold it (sniffed by its header or members).
KNOWN_NAMES = ("fer2013.csv", "fer2013.csv.gz", "icml_face_data.csv", "icml_face_data.csv.gz", "fer2013.tar.gz",
               "fer2013.tgz", "fer2013.tar")
OTHER_SUFFIXES = (".zip", ".csv", ".csv.gz", ".tar.gz", ".tgz", ".tar")
NOT_A_SOURCE = ("fer2013new.csv",)  # FER+ label votes: read with --ferplus beside a source


def sniff(path):
    """Raise DataError unless ``path`` holds the FER2013 CSV (header check only: cheap)."""
    stream, where = open_source(path)
    with stream:
        try:
            first = stream.readline().decode("utf-8-sig", "replace").strip()
        except (OSError, EOFError, zlib.error, tarfile.TarError, zipfile.BadZipFile) as e:
            raise DataError(f"{where}: unreadable ({e})") from None
    column_order(first, where)


def is_image_tree(d):
    return all(os.path.isdir(os.path.join(d, s)) for s in ("train", "test"))


def locate(folder="data"):
    """(kind, path, looked_for) of the FER2013 in ``folder``: kind 'csv' (any CSV form: plain,
    .gz, Kaggle's tar.gz or the competition .zip) or 'images' (the train/ + test/ image-folder
    tree, in ``folder`` or one level below), or kind None when nothing there looks like FER2013.

    Files under other names are sniffed (header, archive members) rather than trusted by name,
    so a FER2013 renamed by a browser download is still found; when something looks like a
    source but none can be read, DataError names each file and why, instead of silently
    reporting no data (run.sh would then train on the synthetic set).
    """
    looked = (f"{folder}/{{{','.join(KNOWN_NAMES)}}}, any other *.zip/*.csv[.gz]/*.tar[.gz] there holding "
              f"the FER2013 CSV, or an image-folder tree (train/ and test/) in {folder}/ or one level below")
    if not os.path.isdir(folder):
        return None, None, looked
    for name in KNOWN_NAMES:
        if os.path.isfile(os.path.join(folder, name)):
            return "csv", os.path.join(folder, name), looked
    entries = sorted(os.listdir(folder))
    for d in [folder] + [os.path.join(folder, e) for e in entries]:
        if os.path.isdir(d) and is_image_tree(d):
            return "images", d, looked
    failures = []
    for e in entries:
        path = os.path.join(folder, e)
        if not os.path.isfile(path) or not e.lower().endswith(OTHER_SUFFIXES) or e.lower() in NOT_A_SOURCE:
            continue
        try:
            sniff(path)
            return "csv", path, looked
        except DataError as err:
            failures.append(str(err))
    if failures:
        raise DataError(f"{folder}/ holds files that may be FER2013 but none could be read: " + " | ".join(failures))
    return None, None, looked


def column_order(first, where):
    """Header line -> (emotion, pixels, Usage) column positions; names trimmed, any order."""
    cols = [c.strip().lower() for c in first.split(",")]
    want = [c.lower() for c in COLUMNS]
    if sorted(cols) == sorted(want):
        return tuple(cols.index(c) for c in want)
    base = os.path.basename(where.split(":")[-1]).lower()
    if base in PARTIAL or cols in (["emotion", "pixels"], ["pixels"]):
        what = PARTIAL.get(base, "has no Usage column, so the PublicTest/PrivateTest split is lost")
        raise DataError(f"{where}: {os.path.basename(where)} {what}; {USE_INSTEAD}")
    raise DataError(f"{where} line 1: header is {first[:60]!r}, expected the columns emotion, pixels, Usage "
                    "in any order (is this fer2013.csv or icml_face_data.csv?)")


def read_chunks(stream, path, chunk_bytes):
    """Yield the column order, then (first_line_number, bytes of whole lines)."""
    def read(n):
        try:
            return stream.read(n)
        except (OSError, EOFError, zlib.error, tarfile.TarError, zipfile.BadZipFile) as e:
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
    yield column_order(first, path)
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

def parse_block(block, line_no, path, order=(0, 1, 2)):
    """Parse CSV lines of the three FER columns -> (labels int64 [n], usage uint8 [n], pixels uint8 [n, 2304]).

    ``order``: the column positions of emotion, pixels and Usage (``column_order``); ``line_no``
    is the file line number of the block's first line, for error messages.
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
        names = ",".join(sorted(COLUMNS, key=lambda c: order[COLUMNS.index(c)]))
        raise DataError(f"{where(i)}: expected 3 fields {names}, found {per_line[i] + 1}")
    # field k of each line lies strictly between sep[k] and sep[k + 1]
    sep = (starts - 1, commas[first_commas], commas[first_commas + 1], ends)
    (lab_a, lab_b), (pix_a, pix_b), (use_a, use_b) = [(sep[k], sep[k + 1]) for k in order]

    # emotion label: one digit 0-6 on the fast path; anything else (spaces, bad text) line by line
    labels = b[lab_a + 1].astype(np.int64) - 48
    odd = np.flatnonzero((lab_b - lab_a != 2) | (labels < 0) | (labels > 6))
    for i in odd:
        field = block[lab_a[i] + 1:lab_b[i]].decode("utf-8", "replace").strip()
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
        code = USAGE_CODE.get(block[use_a[i] + 1:use_b[i]].strip())
        if code is None:
            field = block[use_a[i] + 1:use_b[i]].decode("utf-8", "replace")
            raise DataError(f"{where(i)}: unknown Usage {field!r} (expected one of {', '.join(FER_SPLITS)})")
        usage[i] = code

    # pixels: digit runs inside the pixel field, values from up to three digits per run
    isd[lab_a + 1] = False  # the label digit is not a pixel (Usage holds no digits: checked above)
    for i in odd:
        isd[lab_a[i] + 1:lab_b[i]] = False
    line_of = np.searchsorted(ends, other)
    inside = (other > pix_a[line_of]) & (other < pix_b[line_of])
    if inside.any():
        k = int(np.argmax(inside))
        i, p = line_of[k], other[k]
        lo = block.rfind(b" ", pix_a[i], p) + 1 or pix_a[i] + 1
        hi = min([q for q in (block.find(b" ", p, pix_b[i]), pix_b[i]) if q >= 0])
        tok = block[max(lo, pix_a[i] + 1):hi].decode("utf-8", "replace")
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
    chunks = read_chunks(stream, path, chunk_bytes)
    order = next(chunks)  # the header's column positions
    with ThreadPoolExecutor(workers) as ex:
        pending = collections.deque()
        for line_no, block in chunks:
            pending.append(ex.submit(parse_block, block, line_no, path, order))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def convert(csv_path, out_path, ferplus=None, chunk_bytes=4 << 20, workers=None):
    """Parse ``csv_path`` and write the FER-layout HDF5 atomically; return (rows per split, duplicates)."""
    workers = workers or min(4, os.cpu_count() or 1)
    plus_labels = plus_usage = None
    if ferplus:
        plus_labels, plus_usage = read_ferplus(ferplus)
    stream, where = open_source(csv_path)
    counts = {s: 0 for s in FER_SPLITS}
    digests = {s: [] for s in FER_SPLITS}  # per image, for the duplicate count
    labels_kept = {s: [] for s in FER_SPLITS}
    row = 0
    with stream, atomic_output(out_path) as tmp, h5py.File(tmp, "w") as h5:
        sets = {}
        for s in FER_SPLITS:
            sets[s] = (h5.create_dataset(f"{s}_pixel", (0, NPIX), np.uint8, maxshape=(None, NPIX), chunks=(256, NPIX)),
                       h5.create_dataset(f"{s}_label", (0,), np.int64, maxshape=(None,), chunks=(4096,)))
        for labels, usage, pixels in parsed_blocks(stream, where, chunk_bytes, workers):
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
                    digests[s].append(row_digests(pixels[keep]))
                    labels_kept[s].append(labels[keep])
        if row == 0:
            raise DataError(f"{where} has a header but no data rows")
        empty = [s for s in FER_SPLITS if counts[s] == 0]
        if empty:  # training selects on PublicTest and reports PrivateTest: all three are needed
            raise DataError(f"{where}: no {' or '.join(empty)} rows (Usage column); FER2013 needs rows of "
                            f"{', '.join(FER_SPLITS)}; nothing written")
        if plus_labels is not None and row != len(plus_labels):
            raise DataError(f"{ferplus} has {len(plus_labels)} rows but {csv_path} has {row}; not row-aligned")
        dups = duplicate_summary({s: np.concatenate(digests[s]) for s in FER_SPLITS},
                                 {s: np.concatenate(labels_kept[s]) for s in FER_SPLITS})
        source = os.path.basename(where.replace(":", os.sep)) if plus_labels is None else os.path.basename(ferplus)
        if plus_labels is None:
            write_meta(h5, "FER2013", FER_CLASSES, source=source)
        else:
            write_meta(h5, "FER2013+", FERPLUS_CLASSES, source=source)
        h5.attrs["duplicates"] = json.dumps(dups)
    return counts, dups


# ----------------------------------------------------------------------------------------
# The image-folder FER2013: <DIR>/train/<class>/*.jpg and <DIR>/test/<class>/*.jpg

FOLDER_SPLITS = ("train", "test")
FOLDER_NAME = "FER2013-folders"  # not FER2013: its test split mixes PublicTest and PrivateTest
FOLDERS_H5 = "data/data_folders.h5"  # its own file, so its numbers never mix with FER2013's


def folder_class(name, where):
    """Class folder name (angry, disgust, fear, happy, sad, surprise, neutral; any case) -> label."""
    classes = [c.lower() for c in FER_CLASSES]
    if name.lower() not in classes:
        raise DataError(f"{where}: unknown class folder {name!r} (expected {', '.join(classes)})")
    return classes.index(name.lower())


def scan_split(root, split, resize):
    """One of train/ or test/: (pixels uint8 [N, 48, 48], labels int64 [N], files, resized count)."""
    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
        raise DataError(f"{folder} not found: the image-folder FER2013 has train/<class>/ and test/<class>/")
    found = {}
    for d in sorted(os.listdir(folder)):
        if d.startswith(".") or not os.path.isdir(os.path.join(folder, d)):
            continue
        found[folder_class(d, os.path.join(folder, d))] = d
    missing = [c.lower() for i, c in enumerate(FER_CLASSES) if i not in found]
    if missing:
        raise DataError(f"{folder}: class folder {missing[0]!r} is missing (expected one folder per class: "
                        f"{', '.join(c.lower() for c in FER_CLASSES)})")
    pixels, labels, files, resized = [], [], [], 0
    for label in range(len(FER_CLASSES)):
        cls = os.path.join(folder, found[label])
        names = sorted(f for f in os.listdir(cls) if not f.startswith("."))
        if not names:
            raise DataError(f"{cls}: class folder is empty")
        for f in names:
            img, was = read_face48(os.path.join(cls, f), resize)
            resized += was
            pixels.append(img)
            labels.append(label)
            files.append(f"{split}/{found[label]}/{f}")
    return np.stack(pixels), np.array(labels, np.int64), files, resized


def convert_folders(root, out_path, val_fraction=0.1, seed=0, resize=False):
    """Image folders -> FER-layout HDF5: Training and a seeded stratified validation split carved
    from train/ (stored as PublicTest, which it replaces for selection), the whole test/ folder as
    PrivateTest (the reported split). Returns (rows per split, duplicates, resized count)."""
    from sklearn.model_selection import train_test_split
    if not os.path.isdir(root):
        raise DataError(f"{root} not found: expected the image-folder FER2013 (train/<class>/*.jpg, test/<class>/*.jpg)")
    if not 0 < val_fraction < 1:
        raise DataError(f"--val-fraction {val_fraction}: must be between 0 and 1")
    x, y, files, resized = scan_split(root, "train", resize)
    xt, yt, files_t, resized_t = scan_split(root, "test", resize)
    try:
        fit, val = train_test_split(np.arange(len(y)), test_size=val_fraction, stratify=y, random_state=seed)
    except ValueError as e:  # a class too small to appear in both parts
        raise DataError(f"{root}/train: cannot carve a stratified {val_fraction} validation split ({e})") from None
    fit, val = np.sort(fit), np.sort(val)
    parts = {"Training": (x[fit], y[fit], [files[i] for i in fit]),
             "PublicTest": (x[val], y[val], [files[i] for i in val]),
             "PrivateTest": (xt, yt, files_t)}
    dups = duplicate_summary({s: row_digests(p[0]) for s, p in parts.items()}, {s: p[1] for s, p in parts.items()})
    roles = {"Training": "train/ less the validation images",
             "PublicTest": f"validation: {val_fraction:g} of train/, stratified by class, seed {seed} (selects)",
             "PrivateTest": "test/ (the original PublicTest and PrivateTest mixed; reported)"}
    with atomic_output(out_path) as tmp, h5py.File(tmp, "w") as h5:
        for s, (px, lb, names) in parts.items():
            h5.create_dataset(f"{s}_pixel", data=px.reshape(len(px), NPIX))
            h5.create_dataset(f"{s}_label", data=lb)
            h5.create_dataset(f"{s}_file", data=np.array(names, dtype=h5py.string_dtype()))
        write_meta(h5, FOLDER_NAME, FER_CLASSES, source=os.path.abspath(root))
        h5.attrs["split_roles"] = json.dumps(roles)
        h5.attrs["val_fraction"] = float(val_fraction)
        h5.attrs["val_seed"] = int(seed)
        h5.attrs["duplicates"] = json.dumps(dups)
    return {s: len(p[1]) for s, p in parts.items()}, dups, resized + resized_t


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
    ap.add_argument("--csv", default=None, metavar="PATH",
                    help="fer2013.csv or icml_face_data.csv (also .gz), fer2013.tar.gz, or the competition's .zip "
                         "(default: whatever form of FER2013 is in data/, image folders included; see --locate)")
    ap.add_argument("--images", default=None, metavar="DIR",
                    help="read the image-folder FER2013 instead (DIR/train/<class>/, DIR/test/<class>/): a "
                         "validation split is carved from train/, test/ is the reported split (default: off)")
    ap.add_argument("--val-fraction", type=float, default=0.1, metavar="F",
                    help="--images: fraction of train/ held out for selection, stratified (default: 0.1)")
    ap.add_argument("--resize", action="store_true",
                    help="--images: convert images that are not 48x48 grey (default: refuse them)")
    ap.add_argument("--out", default=None, metavar="FILE",
                    help=f"output HDF5 (default: data/data.h5; {FOLDERS_H5} for the image folders; "
                         "data/synthetic.h5 with --synthetic)")
    ap.add_argument("--locate", action="store_true",
                    help="only print what would be read from data/ ('csv PATH' or 'images DIR'); exit 1 when "
                         "there is no FER2013 there (run.sh uses this)")
    ap.add_argument("--ferplus", default=None, metavar="CSV",
                    help="fer2013new.csv: replace labels by the FER+ majority vote (default: off)")
    ap.add_argument("--synthetic", type=int, default=0, metavar="N",
                    help="write N procedurally drawn faces instead of reading FER2013 (default: 0 = off)")
    ap.add_argument("--seed", type=int, default=0, metavar="S",
                    help="seed for --synthetic and for the --images validation split (default: 0)")
    args = ap.parse_args(argv)
    try:
        if args.locate or not (args.synthetic or args.csv or args.images):
            kind, path, looked = locate("data")
            if args.locate:
                if kind is None:
                    print(f"no FER2013 in data/ (looked for {looked})", file=sys.stderr)
                    sys.exit(1)
                print(kind, path)
                return
            if kind is None:
                raise DataError(f"no FER2013 in data/ (looked for {looked}): {WHERE_TO_GET}")
            print(f"found FER2013 as {'the image-folder tree' if kind == 'images' else 'a CSV source'}: {path}")
            args.csv, args.images = (path, None) if kind == "csv" else (None, path)
        if args.synthetic:
            if args.synthetic < 10:
                raise DataError(f"--synthetic {args.synthetic}: need at least 10 images")
            out = args.out or "data/synthetic.h5"
            counts = write_synthetic(out, args.synthetic, args.seed)
            print(f"SYNTHETIC data (drawn faces, not FER2013): {counts} -> {out}")
            return
        out = args.out or (FOLDERS_H5 if args.images else DEFAULT_FER)
        if args.images:
            if args.ferplus:
                raise DataError("--ferplus: FER+ labels are row-aligned with fer2013.csv, not with --images folders")
            counts, dups, resized = convert_folders(args.images, out, args.val_fraction, args.seed, args.resize)
            print(f"{FOLDER_NAME}: {counts} -> {out}")
            print(f"  PublicTest = validation carved from train/ ({args.val_fraction:g}, stratified, seed {args.seed}); "
                  "PrivateTest = the whole test/ folder. Accuracies on this layout are NOT comparable with "
                  "FER2013 PublicTest/PrivateTest figures.")
            if resized:
                print(f"  note: {resized} image(s) were not 48x48 grey and were converted (--resize)")
        else:
            counts, dups = convert(args.csv, out, args.ferplus)
            print(f"{'FER2013+' if args.ferplus else 'FER2013'}: {counts} -> {out}")
        print("  " + format_duplicates(dups))
    except DataError as e:
        cli_error(str(e))
    except OSError as e:  # unwritable output folder, disk full, ...
        cli_error(f"{e.filename or args.out}: {e.strerror or e}")


if __name__ == "__main__":
    main()
