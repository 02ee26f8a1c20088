"""Image files: a fast check that each one will decode, and the one RGB conversion.

The loaders (and :class:`~sklearn_ecluster.self_training.SelfTrainingReID`,
for paths given to it directly) check every file once, before any training,
so that a long run does not stop at its first bad file. :func:`to_rgb` is the
conversion every reader uses, so that grayscale, palette, alpha, CMYK and
16-bit images all give the same 8-bit RGB images.
"""

import os

import numpy as np
from PIL import Image

# Modes of 16-bit samples, as PIL opens 16-bit grayscale PNGs (older PILs: "I")
_WIDE_INT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
# Formats whose verify() reads and checks all the data (PNG: every chunk's CRC up
# to IEND), so no decode is needed; every other format is decoded at reduced scale
_VERIFIED_FORMATS = ("PNG",)


class CorruptImageError(OSError):
    """Some image files cannot be read.

    Parameters
    ----------
    problems : dict of str to str
        Each bad file and why it cannot be read.
    hint : str
        What the user can do, appended to the message.

    Attributes
    ----------
    problems : dict of str to str
        Each bad file and why it cannot be read.
    """

    def __init__(self, problems, hint=""):
        self.problems = dict(problems)
        listing = "\n".join(f"  {path}: {reason}" for path, reason in self.problems.items())
        super().__init__(
            f"{len(self.problems)} unreadable or corrupt image file(s):\n{listing}\n{hint}"
        )


def to_rgb(image):
    """An 8-bit RGB copy of a PIL image of any mode (``image`` itself if RGB already).

    16-bit samples keep their high byte (``v >> 8``), as PIL does for 16-bit
    RGB PNGs; PIL's own ``convert("RGB")`` would clip them at 255 instead,
    turning most 16-bit images white. Alpha is dropped.
    """
    if image.mode == "RGB":
        return image
    if image.mode in _WIDE_INT_MODES or (image.mode == "I" and image.format == "PNG"):
        samples = np.asarray(image).astype(np.int64)
        samples = (np.clip(samples, 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(samples, "L").convert("RGB")
    return image.convert("RGB")


def image_problem(path):
    """``None`` when the image file ``path`` will decode, else why it will not.

    Opens the file (its header), then runs PIL's ``verify()``. For PNG that
    reads every chunk and checks its CRC, which finds truncated and damaged
    files without decompressing them. ``verify()`` does not read JPEG data, so
    a JPEG (and any other format) is decoded at reduced scale (PIL's
    ``draft``, 1/8 for JPEG), which finds truncated files and broken data
    streams at a fraction of a full decode's cost.
    """
    try:
        with Image.open(path) as image:
            fmt = image.format
            image.verify()
        if fmt not in _VERIFIED_FORMATS:
            with Image.open(path) as image:
                image.draft("RGB", (1, 1))
                image.load()
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ...
        return f"{type(exc).__name__}: {exc}"
    return None


def find_unreadable(paths):
    """``{path: reason}`` of the image files among ``paths`` that will not decode."""
    problems = {}
    for path in paths:
        path = os.fspath(path)
        if not os.path.isfile(path):
            problems[path] = "no such file"
            continue
        reason = image_problem(path)
        if reason is not None:
            problems[path] = reason
    return problems
