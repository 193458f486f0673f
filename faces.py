"""Faces from pictures, without torch: image loading, OpenCV's Haar face detector, square crops.

Shared by predict.py (your photos) and preprocess_ckplus.py (the official CK+ frames), so a face
is found and cropped the same way wherever it comes from.
"""
import os

import numpy as np

from data_io import DataError


def load_grey(path):
    """Any image file -> grey uint8 (H, W), EXIF rotation applied; 16-bit and float scaled to 0-255."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                a = np.asarray(im, np.float64)
                hi = 65535.0 if im.mode.startswith("I;16") else max(a.max(), 1e-9)
                return np.clip(a / hi * 255.0, 0, 255).astype(np.uint8)
            if im.mode in ("RGBA", "LA", "P", "PA"):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))  # transparent -> white
                im = Image.alpha_composite(bg, im)
            return np.asarray(im.convert("L"), np.uint8)
    except (FileNotFoundError, IsADirectoryError):
        raise DataError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: unreadable image ({e})") from None


class FaceDetector:
    """OpenCV's frontal-face Haar cascade. ``scale`` < 1 searches a downscaled copy of the image
    and maps the boxes back: a live camera loop's choice, since the cascade's cost grows with the
    pixels it scans (bench/bench_live.py); faces under max(min_size, 24 / scale) px (the cascade's
    window is 24 px) are then missed."""

    def __init__(self, min_size=30, scale=1.0):
        import cv2
        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise DataError(f"OpenCV's Haar cascade {path} is missing (install opencv-python-headless 4.x)")
        if not 0 < scale <= 1:
            raise DataError(f"detection scale {scale}: must be in (0, 1]")
        self.min_size, self.scale = min_size, scale

    def __call__(self, grey):
        """Boxes (x, y, w, h) in ``grey``'s pixels, largest first."""
        import cv2
        small, m = grey, self.min_size
        if self.scale < 1:
            small = cv2.resize(grey, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
            m = max(1, int(round(self.min_size * self.scale)))
        boxes = self.cascade.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(m, m))
        boxes = [tuple(int(round(v / self.scale)) for v in b) for b in boxes]
        return sorted(boxes, key=lambda b: -b[2] * b[3])


def crop_face(grey, box, margin=0.2):
    """Square crop around ``box`` with ``margin`` of its size on each side, as 48x48 uint8."""
    import cv2
    x, y, w, h = box
    side = int(max(w, h) * (1 + 2 * margin))
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    H, W = grey.shape
    pad = max(0, -x0, -y0, x0 + side - W, y0 + side - H)
    if pad:  # faces at the border: replicate edge pixels instead of shrinking the crop
        grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    return cv2.resize(grey[y0:y0 + side, x0:x0 + side], (48, 48), interpolation=cv2.INTER_AREA)


def whole_face(grey):
    import cv2
    return cv2.resize(grey, (48, 48), interpolation=cv2.INTER_AREA if min(grey.shape) > 48 else cv2.INTER_LINEAR)


def read_face48(path, resize=False):
    """48x48 grey uint8 array; other sizes/modes only with ``resize`` (returns (array, was_resized))."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "L" and im.size == (48, 48):
                return np.asarray(im, np.uint8), False
            if not resize:
                raise DataError(f"{path}: {im.size[0]}x{im.size[1]} {im.mode} image, expected 48x48 grey "
                                "(L); pass --resize to convert such images")
            return np.asarray(im.convert("L").resize((48, 48), Image.BILINEAR), np.uint8), True
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: unreadable image ({e})") from None
