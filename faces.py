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
    def __init__(self, min_size=30):
        import cv2
        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise DataError(f"OpenCV's Haar cascade {path} is missing (install opencv-python-headless 4.x)")
        self.min_size = min_size

    def __call__(self, grey):
        """Boxes (x, y, w, h), largest first."""
        boxes = self.cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                              minSize=(self.min_size, self.min_size))
        return sorted((tuple(int(v) for v in b) for b in boxes), key=lambda b: -b[2] * b[3])


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
