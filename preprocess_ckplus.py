"""CK+ (the CK+48 folder, or the official distribution) -> data/CK_data.h5.

    python preprocess_ckplus.py                          # data/CK+48 -> data/CK_data.h5
    python preprocess_ckplus.py --src DIR --out FILE [--resize]
    python preprocess_ckplus.py --src CK+                # the official cohn-kanade-images/ + Emotion/
    python preprocess_ckplus.py --src CK+ --save-crops data/CK+48   # ...and the crops as a CK+48 folder

CK+48: seven class folders of 48x48 grey PNGs named S<subject>_<sequence>_<frame>.png.
The official distribution (cohn-kanade-images/S005/001/S005_001_00000001.png, labels in
Emotion/S005/001/S005_001_000000NN_emotion.txt: 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy,
6 sadness, 7 surprise) is turned into the same thing the way CK+48 was made: the last three frames
of each labelled sequence (327 of 593), the face found by OpenCV's Haar cascade and cropped to its
box (--margin), 48x48 grey.

Keys as the original repo (data_pixel uint8 [N, 48, 48], data_label int64, class-ordered,
files sorted within a class) plus data_subject / data_sequence, which the subject-independent
folds need.
"""
import argparse
import os
import re

import h5py
import numpy as np

from data_io import DataError, atomic_output, cli_error, write_meta
from faces import crop_face, load_grey, read_face48

# label order of the original repo
CK_CLASSES = ["anger", "disgust", "fear", "happy", "sadness", "surprise", "contempt"]
NAME = re.compile(r"^S(\d+)_(\d+)_(\d+)\.(png|jpg|jpeg|bmp|tif|tiff)$", re.I)
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# the official Emotion codes -> this repo's label order
OFFICIAL_CODES = {1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy", 6: "sadness", 7: "surprise"}
FRAMES = 3  # CK+48 keeps the last three frames of each labelled sequence (327 x 3 = 981)


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


# ----------------------------------------------------------------------------------------
# The official CK+ distribution

def find_official(src):
    """(images folder, Emotion folder) when ``src`` holds the official layout (up to two levels down), else None."""
    if not os.path.isdir(src):
        return None
    for root, dirs, _ in os.walk(src):
        if root[len(src):].count(os.sep) > 2:
            dirs[:] = []
            continue
        if "cohn-kanade-images" in dirs:
            emo = [os.path.join(r, "Emotion") for r in (root, os.path.dirname(root))
                   if os.path.isdir(os.path.join(r, "Emotion"))]
            if not emo:
                emo = [os.path.join(r, d) for r, ds, _ in os.walk(src) for d in ds if d == "Emotion"]
            if not emo:
                raise DataError(f"{os.path.join(root, 'cohn-kanade-images')}: found the images but no Emotion/ "
                                "folder of labels beside them (it ships as a separate download)")
            return os.path.join(root, "cohn-kanade-images"), emo[0]
    return None


def read_emotion(path):
    """One Emotion/*_emotion.txt -> class name; one error line for anything but a code 1-7."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: unreadable emotion file ({e})") from None
    try:
        code = float(text)
    except ValueError:
        raise DataError(f"{path}: expected one emotion code 1-7, found {text[:40]!r}") from None
    if code != int(code) or int(code) not in OFFICIAL_CODES:
        names = ", ".join(f"{k} {v}" for k, v in OFFICIAL_CODES.items())
        raise DataError(f"{path}: emotion code {text!r} is not one of 1-7 ({names})")
    return OFFICIAL_CODES[int(code)]


def scan_official(images, emotion, margin=0.0, detector=None):
    """Labelled sequences -> the same arrays as ``scan`` (faces detected and cropped, 48x48 grey).

    A frame where the cascade finds no face uses the box found on another of the sequence's kept
    frames (the head barely moves within a sequence); a sequence with no face at all is an error.
    """
    if detector is None:
        from faces import FaceDetector
        detector = FaceDetector()
    items, sequences = [], 0
    for subject in sorted(d for d in os.listdir(emotion) if not d.startswith(".")):
        for seq in sorted(d for d in os.listdir(os.path.join(emotion, subject)) if not d.startswith(".")):
            folder = os.path.join(emotion, subject, seq)
            labels = sorted(f for f in os.listdir(folder) if f.endswith("_emotion.txt"))
            if not labels:
                continue  # an unlabelled sequence (266 of the 593)
            if len(labels) > 1:
                raise DataError(f"{folder}: {len(labels)} emotion files in one sequence, expected one")
            cls = read_emotion(os.path.join(folder, labels[0]))
            frames_dir = os.path.join(images, subject, seq)
            if not os.path.isdir(frames_dir):
                raise DataError(f"{frames_dir} not found: {os.path.join(folder, labels[0])} labels a sequence "
                                "that has no frames")
            frames = sorted(f for f in os.listdir(frames_dir) if NAME.match(f))
            if not frames:
                raise DataError(f"{frames_dir}: no frames named S<subject>_<sequence>_<frame>.png")
            sequences += 1
            for f in frames[-FRAMES:]:
                items.append((cls, os.path.join(frames_dir, f)))
    if not items:
        raise DataError(f"{emotion}: no labelled sequences (no *_emotion.txt files)")

    pixels = {}
    by_sequence = {}
    for _, path in items:
        by_sequence.setdefault(os.path.dirname(path), []).append(path)
    for seq_dir, paths in by_sequence.items():
        greys = {p: load_grey(p) for p in paths}
        boxes = {p: (detector(g) or [None])[0] for p, g in greys.items()}
        fallback = next((b for b in boxes.values() if b is not None), None)
        if fallback is None:
            raise DataError(f"{paths[-1]}: no face found in the last {len(paths)} frames of {seq_dir}")
        for p, g in greys.items():
            pixels[p] = crop_face(g, boxes[p] or fallback, margin)
    order = sorted(range(len(items)), key=lambda i: (CK_CLASSES.index(items[i][0]), os.path.basename(items[i][1])))
    out_px, labels, subjects, seqs, names = [], [], [], [], []
    for i in order:
        cls, path = items[i]
        m = NAME.match(os.path.basename(path))
        out_px.append(pixels[path])
        labels.append(CK_CLASSES.index(cls))
        subjects.append(int(m.group(1)))
        seqs.append(int(m.group(2)))
        names.append(f"{cls}/{os.path.splitext(os.path.basename(path))[0]}.png")
    return (np.stack(out_px), np.array(labels, np.int64), np.array(subjects, np.int64), np.array(seqs, np.int64),
            names, sequences)


def save_crops(folder, pixels, names):
    """The crops as a CK+48-style folder (<class>/S<subject>_<sequence>_<frame>.png)."""
    from PIL import Image
    for px, name in zip(pixels, names):
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(px).save(path)


def convert(src, out, resize=False, margin=0.0, crops=None, detector=None):
    """Either layout -> HDF5; returns (labels, subjects, resized count, labelled sequences or None)."""
    official = find_official(src)
    sequences = None
    if official:
        pixels, labels, subjects, sequences_, names, sequences = scan_official(*official, margin, detector)
        resized = 0
    else:
        pixels, labels, subjects, sequences_, names, resized = scan(src, resize)
    with atomic_output(out) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("data_pixel", data=pixels)
        h5.create_dataset("data_label", data=labels)
        h5.create_dataset("data_subject", data=subjects)
        h5.create_dataset("data_sequence", data=sequences_)
        h5.create_dataset("data_file", data=np.array(names, dtype=h5py.string_dtype()))
        write_meta(h5, "CK+", CK_CLASSES, source=os.path.abspath(src))
        if official:
            h5.attrs["crop"] = f"official CK+: last {FRAMES} frames per labelled sequence, Haar face box, margin {margin:g}"
    if crops:
        save_crops(crops, pixels, names)
    return labels, subjects, resized, sequences


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default="data/CK+48", metavar="DIR",
                    help="the CK+48 folder, or the official CK+ folder holding cohn-kanade-images/ and Emotion/ "
                         "(default: data/CK+48)")
    ap.add_argument("--out", default="data/CK_data.h5", metavar="FILE", help="output HDF5 (default: data/CK_data.h5)")
    ap.add_argument("--resize", action="store_true", help="convert images that are not 48x48 grey (default: refuse)")
    ap.add_argument("--margin", type=float, default=0.0, metavar="F",
                    help="official CK+: widen the detected face box by F of its size on each side (default: 0)")
    ap.add_argument("--save-crops", default=None, metavar="DIR",
                    help="official CK+: also write the crops as a CK+48-style folder (default: off)")
    args = ap.parse_args(argv)
    try:
        labels, subjects, resized, sequences = convert(args.src, args.out, args.resize, args.margin, args.save_crops)
    except DataError as e:
        cli_error(str(e))
    except OSError as e:
        cli_error(f"{e.filename or args.out}: {e.strerror or e}")
    counts = ", ".join(f"{c} {n}" for c, n in zip(CK_CLASSES, np.bincount(labels, minlength=7)))
    print(f"CK+: {len(labels)} images of {len(set(subjects.tolist()))} subjects ({counts}) -> {args.out}")
    if sequences is not None:
        print(f"  official CK+: {sequences} labelled sequences, last {FRAMES} frames each, faces by Haar cascade"
              + (f"; crops in {args.save_crops}" if args.save_crops else ""))
    if resized:
        print(f"note: {resized} image(s) were not 48x48 grey and were converted (--resize)")


if __name__ == "__main__":
    main()
