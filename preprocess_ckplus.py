"""CK+48 folder (seven class folders of 48x48 grey PNGs) -> data/CK_data.h5.

    python preprocess_ckplus.py                          # data/CK+48 -> data/CK_data.h5
    python preprocess_ckplus.py --src DIR --out FILE [--resize]

Keys as the original repo (data_pixel uint8 [N, 48, 48], data_label int64, class-ordered,
files sorted within a class) plus data_subject / data_sequence parsed from the file names
S<subject>_<sequence>_<frame>.png, which the subject-independent folds need.
"""
import argparse
import os
import re

import h5py
import numpy as np
from data_io import DataError, atomic_output, cli_error, write_meta
from faces import read_face48

# label order of the original repo
CK_CLASSES = ["anger", "disgust", "fear", "happy", "sadness", "surprise", "contempt"]
NAME = re.compile(r"^S(\d+)_(\d+)_(\d+)\.(png|jpg|jpeg|bmp|tif|tiff)$", re.I)
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def scan(src, resize=False):
    """Read the folder: (pixels [N, 48, 48], label, subject, sequence, file names, resized count)."""
    if not os.path.isdir(src):
        raise DataError(f"{src} not found: put the CK+48 folder (anger/ contempt/ disgust/ fear/ happy/ "
                        "sadness/ surprise/) there or pass --src DIR")
    folders = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)) and not d.startswith("."))
    unknown = [d for d in folders if d not in CK_CLASSES]
    if unknown:
        raise DataError(f"{os.path.join(src, unknown[0])}: unknown class folder {unknown[0]!r} "
                        f"(expected {', '.join(CK_CLASSES)})")
    missing = [c for c in CK_CLASSES if c not in folders]
    if missing:
        raise DataError(f"{src}: class folder {missing[0]!r} is missing")
    pixels, labels, subjects, sequences, names, resized = [], [], [], [], [], 0
    for label, cls in enumerate(CK_CLASSES):
        folder = os.path.join(src, cls)
        files = sorted(f for f in os.listdir(folder) if not f.startswith(".") and f.lower().endswith(IMAGE_EXT))
        if not files:
            raise DataError(f"{folder}: class folder is empty")
        for f in files:
            m = NAME.match(f)
            if not m:
                raise DataError(f"{os.path.join(folder, f)}: file name is not S<subject>_<sequence>_<frame>.png")
            img, was = read_face48(os.path.join(folder, f), resize)
            resized += was
            pixels.append(img)
            labels.append(label)
            subjects.append(int(m.group(1)))
            sequences.append(int(m.group(2)))
            names.append(f"{cls}/{f}")
    return (np.stack(pixels), np.array(labels, np.int64), np.array(subjects, np.int64),
            np.array(sequences, np.int64), names, resized)


def convert(src, out, resize=False):
    pixels, labels, subjects, sequences, names, resized = scan(src, resize)
    with atomic_output(out) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("data_pixel", data=pixels)
        h5.create_dataset("data_label", data=labels)
        h5.create_dataset("data_subject", data=subjects)
        h5.create_dataset("data_sequence", data=sequences)
        h5.create_dataset("data_file", data=np.array(names, dtype=h5py.string_dtype()))
        write_meta(h5, "CK+", CK_CLASSES, source=os.path.abspath(src))
    return labels, subjects, resized


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default="data/CK+48", metavar="DIR", help="the CK+48 folder (default: data/CK+48)")
    ap.add_argument("--out", default="data/CK_data.h5", metavar="FILE", help="output HDF5 (default: data/CK_data.h5)")
    ap.add_argument("--resize", action="store_true", help="convert images that are not 48x48 grey (default: refuse)")
    args = ap.parse_args(argv)
    try:
        labels, subjects, resized = convert(args.src, args.out, args.resize)
    except DataError as e:
        cli_error(str(e))
    except OSError as e:
        cli_error(f"{e.filename or args.out}: {e.strerror or e}")
    counts = ", ".join(f"{c} {n}" for c, n in zip(CK_CLASSES, np.bincount(labels, minlength=7)))
    print(f"CK+: {len(labels)} images of {len(set(subjects.tolist()))} subjects ({counts}) -> {args.out}")
    if resized:
        print(f"note: {resized} image(s) were not 48x48 grey and were converted (--resize)")


if __name__ == "__main__":
    main()
