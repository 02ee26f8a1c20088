"""Loaders of re-ID datasets kept in local folders: ``load_*`` functions.

Each returns a :class:`~sklearn.utils.Bunch` with ``train``, ``query`` and
``gallery`` parts (``paths``, ``pids``, ``camids``), ``root``, ``name`` and
``DESCR``. Nothing is downloaded. Every problem with the files is found at
load time (missing folders, names that do not parse, unreadable images), so
that a long training run does not stop at its first bad file.
"""

import os
import re
import sys
import textwrap
import warnings
from numbers import Integral

import numpy as np
from sklearn.utils import Bunch

from ..utils._sklearn import Interval, StrOptions, validate_params
from ..utils._validation import check_scalar
from ._image_files import CorruptImageError, find_unreadable
from ._layouts import (
    DUKEMTMC_REID,
    IMAGE_EXTENSIONS,
    MARKET1501,
    MARKET_PATTERN,
    MSMT17,
    PRID450S,
    Layout,
    compile_pattern,
    describe_entries,
    find_dataset_dir,
    format_names,
    list_image_files,
    parse_names,
)

__all__ = [
    "load_dukemtmc_reid",
    "load_market1501",
    "load_msmt17",
    "load_prid450s",
    "load_reid_folder",
]

PARTS = ("train", "query", "gallery")
MARKET_FOLDERS = ("bounding_box_train", "query", "bounding_box_test")


# constraints shared by the loaders' parameters
_ROOT = [str, os.PathLike]
_ON_CORRUPT = [StrOptions({"raise", "skip", "ignore"})]
_ON_MISMATCH = [StrOptions({"raise", "skip"})]
_COMMON = {"root": _ROOT, "relabel_train": ["boolean"], "on_corrupt": _ON_CORRUPT}


def _warn(message):
    """A UserWarning attributed to the first caller outside this package."""
    frame, stacklevel = sys._getframe(1), 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith(
        "sklearn_ecluster."
    ):
        frame, stacklevel = frame.f_back, stacklevel + 1
    warnings.warn(message, UserWarning, stacklevel=stacklevel)


def _drop_unreadable(parts, on_corrupt):
    """Check every image of ``parts`` once; raise listing all bad ones, or drop them."""
    if on_corrupt == "ignore":
        return parts
    problems = find_unreadable(p for paths, _, _ in parts.values() for p in paths)
    if not problems:
        return parts
    if on_corrupt == "raise":
        raise CorruptImageError(
            problems, "Replace them, or pass on_corrupt='skip' to leave them out."
        )
    _warn(str(CorruptImageError(problems, "They are left out.")))
    kept = {}
    for part, (paths, pids, camids) in parts.items():
        keep = np.array([path not in problems for path in paths], dtype=bool)
        kept[part] = ([p for p, k in zip(paths, keep) if k], pids[keep], camids[keep])
    return kept


def _bunch_part(paths, pids, camids):
    order = sorted(range(len(paths)), key=paths.__getitem__)
    return Bunch(
        paths=[paths[i] for i in order],
        pids=np.asarray(pids, dtype=np.int64)[order],
        camids=np.asarray(camids, dtype=np.int64)[order],
    )


def _check_cameras(names, cameras, first_camera, n_cameras, where, hint):
    camids = cameras - first_camera
    outside = camids < 0
    if n_cameras is not None:
        outside |= camids >= n_cameras
    if outside.any():
        bad = [f"{names[i]!r} (camera {cameras[i]})" for i in np.flatnonzero(outside)]
        allowed = (
            f"{first_camera}..{first_camera + n_cameras - 1}"
            if n_cameras is not None
            else f">= {first_camera}"
        )
        raise ValueError(
            f"{len(bad)} file(s) in {where!r} name a camera outside {allowed}: "
            f"{format_names(bad, quote=False)}. {hint}"
        )
    return camids


def _read_folder(folder, regex, *, first_camera, n_cameras, on_mismatch, hint):
    """``(paths, pids, camids, n_junk)`` of one folder's images, junk dropped."""
    names = list_image_files(folder)
    if not names:
        raise ValueError(
            f"No image files ({', '.join(IMAGE_EXTENSIONS)}) in {folder!r}. "
            f"Found: {describe_entries(folder)}."
        )
    kept, pids, cameras, bad = parse_names(names, regex)
    if bad:
        message = (
            f"{len(bad)} file name(s) in {folder!r} do not match the pattern "
            f"{regex.pattern!r} (person id, camera): {format_names(bad)}."
        )
        if on_mismatch == "raise":
            raise ValueError(message + " Pass on_mismatch='skip' to leave them out.")
        _warn(message + " They are left out.")
    camids = _check_cameras(kept, cameras, first_camera, n_cameras, folder, hint)
    keep = pids >= 0  # Market-1501 marks junk boxes with person id -1
    paths = [os.path.join(folder, n) for n, k in zip(kept, keep) if k]
    return paths, pids[keep], camids[keep], int((~keep).sum())


def _finish(parts, *, root, name, layout, relabel_train, on_corrupt, notes):
    """Check the images, relabel, sort and describe: the returned Bunch."""
    parts = _drop_unreadable(parts, on_corrupt)
    paths, pids, camids = parts["train"]
    if relabel_train:
        pids = np.unique(pids, return_inverse=True)[1].reshape(-1)
        notes = [*notes, "Train person ids are relabelled to 0..n-1 (sorted order)."]
    parts["train"] = (paths, pids, camids)
    bunch = Bunch(**{part: _bunch_part(*parts[part]) for part in PARTS})
    bunch.root = str(root)
    bunch.name = name
    bunch.DESCR = _describe(bunch, layout, notes)
    return bunch


def _describe(bunch, layout, notes):
    title = f"{bunch.name} (read from {bunch.root})"
    lines = [title, "=" * len(title), "", "part      images  persons  cameras"]
    for part in PARTS:
        p = bunch[part]
        lines.append(
            f"{part:<8}{len(p.paths):>8}{len(np.unique(p.pids)):>9}"
            f"{len(np.unique(p.camids)):>9}"
        )
    lines.append("")
    for note in ["Camera ids are 0-based.", *notes]:
        lines += textwrap.wrap(note, 79)
    if layout.reference:
        lines += ["", *textwrap.wrap("Reference: " + layout.reference, 79)]
    return "\n".join(lines) + "\n"


def _load_folders(
    root,
    layout,
    folders,
    *,
    regex,
    first_camera,
    relabel_train,
    on_corrupt,
    on_mismatch,
    name,
    hint,
):
    root = find_dataset_dir(root, layout)
    parts, n_junk = {}, 0
    for part, folder in zip(PARTS, folders):
        if folder is None:
            parts[part] = ([], np.zeros(0, np.int64), np.zeros(0, np.int64))
            continue
        paths, pids, camids, junk = _read_folder(
            os.path.normpath(os.path.join(root, folder)),
            regex,
            first_camera=first_camera,
            n_cameras=layout.n_cameras,
            on_mismatch=on_mismatch,
            hint=hint,
        )
        parts[part] = (paths, pids, camids)
        n_junk += junk
    n_distractors = int((parts["gallery"][1] == 0).sum())
    notes = [
        f"Junk images (person id -1) are dropped: {n_junk}.",
        f"Distractors (person id 0) kept in the gallery: {n_distractors}.",
    ]
    return _finish(
        parts,
        root=root,
        name=name,
        layout=layout,
        relabel_train=relabel_train,
        on_corrupt=on_corrupt,
        notes=notes,
    )


_OTHER_DATASET = (
    "Files of another dataset? Use its loader, or load_reid_folder, which "
    "takes any number of cameras."
)


@validate_params({**_COMMON, "on_mismatch": _ON_MISMATCH},
                 prefer_skip_nested_validation=True)
def load_market1501(
    root, *, relabel_train=False, on_corrupt="raise", on_mismatch="raise"
):
    """Load the Market-1501 dataset from a local folder.

    Reads the file lists of ``bounding_box_train/`` (train), ``query/`` and
    ``bounding_box_test/`` (gallery) and parses person and camera from the
    file names (``0002_c1s1_000451_03.jpg`` is person 2 seen by camera 1)
    with the regex ``([-\\d]+)_c(\\d)``. Nothing is downloaded.

    Read more in the :ref:`User Guide <datasets>`.

    Parameters
    ----------
    root : str or path-like
        The ``Market-1501-v15.09.15`` folder, or its parent. Any folder that
        directly holds the three sub-folders works; in the parent, a child
        folder named ``Market-1501-v15.09.15``, ``Market-1501`` or
        ``market1501`` (torchreid's, which may hold the former) is found.
    relabel_train : bool, default=False
        Map the train person ids to ``0..n-1`` (in sorted order), as a
        classification head needs. Query and gallery ids are left as read.
    on_corrupt : {"raise", "skip", "ignore"}, default="raise"
        What to do with image files that cannot be read. ``"raise"``: check
        every image (PNG: PIL's ``verify()``; JPEG and others: a decode at
        reduced scale) and raise one error listing all bad files;
        ``"skip"``: leave them out with a warning; ``"ignore"``: open no file
        (fast; a bad file then fails when it is read).
    on_mismatch : {"raise", "skip"}, default="raise"
        What to do with image files whose names do not parse: raise an error
        naming them, or leave them out with a warning.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With attributes

        train, query, gallery : Bunch
            Each with ``paths`` (list of str, sorted), ``pids`` (int64
            array of person ids) and ``camids`` (int64 array of 0-based
            camera ids).
        root : str
            The dataset folder that was read.
        name : str
            ``"Market-1501"``.
        DESCR : str
            Sizes of the parts and notes on the data.

    Raises
    ------
    FileNotFoundError
        If ``root`` is missing or holds no Market-1501 layout; the message
        shows the expected tree and what was found.
    ValueError
        If a folder holds no image, a file name does not parse, or a camera
        is outside 1..6.
    OSError
        If ``on_corrupt="raise"`` and some images cannot be read.

    See Also
    --------
    load_dukemtmc_reid : The same layout with 8 cameras.
    load_reid_folder : Any folder of images named by person and camera.
    ReIDImageDataset : A torch dataset over the images of one part.

    Notes
    -----
    Junk boxes (person id -1, in the gallery) are dropped, as the evaluation
    protocol does; distractors (person id 0) are kept in the gallery. Read
    whole, Market-1501 has 12,936 train images of 751 persons, 3,368 queries
    and 15,913 gallery images (19,732 with junk); 6 cameras.

    Examples
    --------
    >>> import os, tempfile
    >>> from PIL import Image
    >>> from sklearn_ecluster.datasets import load_market1501
    >>> tmp = tempfile.TemporaryDirectory()
    >>> files = {
    ...     "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg"],
    ...     "query": ["0007_c1s1_000851_00.jpg"],
    ...     "bounding_box_test": ["0007_c3s1_001251_02.jpg", "0000_c2s1_000001_01.jpg",
    ...                           "-1_c1s1_000401_03.jpg"],
    ... }
    >>> for folder, names in files.items():
    ...     os.makedirs(os.path.join(tmp.name, "Market-1501-v15.09.15", folder))
    ...     for name in names:
    ...         path = os.path.join(tmp.name, "Market-1501-v15.09.15", folder, name)
    ...         Image.new("RGB", (64, 128)).save(path)
    >>> data = load_market1501(tmp.name)  # the parent works too
    >>> data.train.pids, data.train.camids
    (array([2, 2]), array([0, 1]))
    >>> data.gallery.pids  # the junk image (-1) is dropped, the distractor (0) kept
    array([0, 7])
    >>> os.path.basename(data.query.paths[0])
    '0007_c1s1_000851_00.jpg'
    >>> tmp.cleanup()
    """
    return _load_folders(
        root,
        MARKET1501,
        MARKET_FOLDERS,
        regex=compile_pattern(MARKET_PATTERN),
        first_camera=1,
        relabel_train=relabel_train,
        on_corrupt=on_corrupt,
        on_mismatch=on_mismatch,
        name=MARKET1501.name,
        hint=_OTHER_DATASET,
    )


@validate_params({**_COMMON, "on_mismatch": _ON_MISMATCH},
                 prefer_skip_nested_validation=True)
def load_dukemtmc_reid(
    root, *, relabel_train=False, on_corrupt="raise", on_mismatch="raise"
):
    """Load the DukeMTMC-reID dataset from a local folder.

    The layout of Market-1501 (``bounding_box_train/``, ``query/``,
    ``bounding_box_test/``) with 8 cameras and names such as
    ``0001_c2_f0046182.jpg`` (person 1, camera 2, frame 46182). DukeMTMC was
    withdrawn by its authors; this reads the copy of those who have it.
    Nothing is downloaded.

    Read more in the :ref:`User Guide <datasets>`.

    Parameters
    ----------
    root : str or path-like
        The ``DukeMTMC-reID`` folder, or its parent (torchreid's
        ``dukemtmc-reid`` folder works too).
    relabel_train : bool, default=False
        Map the train person ids to ``0..n-1`` (in sorted order).
    on_corrupt : {"raise", "skip", "ignore"}, default="raise"
        Unreadable images: raise one error listing all, leave them out with a
        warning, or do not open the files at all.
    on_mismatch : {"raise", "skip"}, default="raise"
        Image files whose names do not parse: raise, or leave them out with a
        warning.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``train``, ``query`` and ``gallery`` (each with ``paths``, ``pids``,
        ``camids``, cameras 0-based), ``root``, ``name`` (``"DukeMTMC-reID"``)
        and ``DESCR``; see :func:`load_market1501`.

    Raises
    ------
    FileNotFoundError
        If ``root`` is missing or holds no DukeMTMC-reID layout.
    ValueError
        If a folder holds no image, a file name does not parse, or a camera
        is outside 1..8.
    OSError
        If ``on_corrupt="raise"`` and some images cannot be read.

    See Also
    --------
    load_market1501 : The same layout with 6 cameras.

    Notes
    -----
    Read whole: 16,522 train images of 702 persons, 2,228 queries and 17,661
    gallery images (408 of the gallery persons are distractors with their own
    ids).

    Examples
    --------
    >>> import os, tempfile
    >>> from PIL import Image
    >>> from sklearn_ecluster.datasets import load_dukemtmc_reid
    >>> tmp = tempfile.TemporaryDirectory()
    >>> files = {
    ...     "bounding_box_train": ["0001_c2_f0046182.jpg", "0001_c6_f0030883.jpg"],
    ...     "query": ["0005_c8_f0017723.jpg"],
    ...     "bounding_box_test": ["0005_c2_f0096011.jpg"],
    ... }
    >>> for folder, names in files.items():
    ...     os.makedirs(os.path.join(tmp.name, "DukeMTMC-reID", folder))
    ...     for name in names:
    ...         path = os.path.join(tmp.name, "DukeMTMC-reID", folder, name)
    ...         Image.new("RGB", (64, 128)).save(path)
    >>> data = load_dukemtmc_reid(tmp.name)
    >>> data.train.camids, data.query.camids
    (array([1, 5]), array([7]))
    >>> tmp.cleanup()
    """
    return _load_folders(
        root,
        DUKEMTMC_REID,
        MARKET_FOLDERS,
        regex=compile_pattern(MARKET_PATTERN),
        first_camera=1,
        relabel_train=relabel_train,
        on_corrupt=on_corrupt,
        on_mismatch=on_mismatch,
        name=DUKEMTMC_REID.name,
        hint=_OTHER_DATASET,
    )


@validate_params(
    {
        **_COMMON,
        "pattern": [str, re.Pattern],
        "subsets": [tuple, list],
        "n_cameras": [Interval(Integral, 1, None, closed="left"), None],
        "first_camera": [Interval(Integral, 0, None, closed="left")],
        "on_mismatch": _ON_MISMATCH,
        "name": [str, None],
    },
    prefer_skip_nested_validation=True,
)
def load_reid_folder(
    root,
    *,
    pattern=MARKET_PATTERN,
    subsets=MARKET_FOLDERS,
    n_cameras=None,
    first_camera=1,
    relabel_train=False,
    on_corrupt="raise",
    on_mismatch="raise",
    name=None,
):
    """Load a folder of person images whose file names carry person and camera.

    For datasets laid out like Market-1501 (train, query and gallery
    sub-folders) but with other folder names, file names or camera counts,
    and for a plain folder of unlabelled training images.

    Read more in the :ref:`User Guide <datasets>`.

    Parameters
    ----------
    root : str or path-like
        The folder that holds the ``subsets`` sub-folders (not its parent).
    pattern : str or re.Pattern, default=Market-1501's pattern
        Regex searched in each file name (``re.search``); groups 1 and 2 (or
        the named groups ``pid`` and ``camid``) are the person id and the
        camera number. The default, ``r"([-\\d]+)_c(\\d)"``, reads
        Market-1501's names.
    subsets : tuple of (str or None), default=("bounding_box_train", "query", \
"bounding_box_test")
        Sub-folders of ``root`` read as the train, query and gallery parts;
        ``"."`` is ``root`` itself and ``None`` leaves a part empty.
    n_cameras : int, default=None
        Number of cameras: a camera outside ``first_camera ..
        first_camera + n_cameras - 1`` is an error. ``None`` checks only the
        lower bound.
    first_camera : int, default=1
        The number of the first camera in the file names (1 for Market-1501's
        names, 0 for names that count from 0); ``camids`` start at 0.
    relabel_train : bool, default=False
        Map the train person ids to ``0..n-1`` (in sorted order).
    on_corrupt : {"raise", "skip", "ignore"}, default="raise"
        Unreadable images: raise one error listing all, leave them out with a
        warning, or do not open the files at all.
    on_mismatch : {"raise", "skip"}, default="raise"
        Image files whose names do not match ``pattern``: raise, or leave
        them out with a warning.
    name : str, default=None
        Name of the dataset; the name of ``root`` when ``None``.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``train``, ``query`` and ``gallery`` (each with ``paths``, ``pids``,
        ``camids``, cameras 0-based), ``root``, ``name`` and ``DESCR``; see
        :func:`load_market1501`.

    Raises
    ------
    FileNotFoundError
        If ``root`` or one of the ``subsets`` is missing.
    ValueError
        If a parameter is invalid, a folder holds no image, a file name does
        not match ``pattern`` or a camera is out of range.
    OSError
        If ``on_corrupt="raise"`` and some images cannot be read.

    See Also
    --------
    load_market1501 : The Market-1501 layout, found from its parent folder too.

    Notes
    -----
    Negative person ids (Market-1501's junk, -1) are dropped; every other id,
    0 included, is kept.

    Examples
    --------
    >>> import os, tempfile
    >>> from PIL import Image
    >>> from sklearn_ecluster.datasets import load_reid_folder
    >>> tmp = tempfile.TemporaryDirectory()
    >>> for name in ["p12_cam0_1.png", "p12_cam1_7.png", "p30_cam2_3.png"]:
    ...     Image.new("RGB", (32, 64)).save(os.path.join(tmp.name, name))
    >>> data = load_reid_folder(
    ...     tmp.name, pattern=r"p(\\d+)_cam(\\d)", subsets=(".", None, None),
    ...     first_camera=0)
    >>> data.train.pids, data.train.camids, len(data.query.paths)
    (array([12, 12, 30]), array([0, 1, 2]), 0)
    >>> tmp.cleanup()
    """
    regex = compile_pattern(pattern)
    subsets = tuple(subsets) if isinstance(subsets, list | tuple) else subsets
    if (
        not isinstance(subsets, tuple)
        or len(subsets) != 3
        or not all(s is None or isinstance(s, str | os.PathLike) for s in subsets)
        or all(s is None for s in subsets)
    ):
        raise ValueError(
            "subsets must be a tuple of 3 folder names (train, query, gallery), "
            f"None for an empty part, not all None; got {subsets!r}."
        )
    folders = tuple(None if s is None else os.fspath(s) for s in subsets)
    n_cameras = None if n_cameras is None else int(n_cameras)
    first_camera = int(first_camera)
    root_name = os.path.basename(os.path.abspath(os.path.expanduser(os.fspath(root))))
    layout = Layout(
        name=root_name if name is None else str(name),
        required=tuple((f + "/",) for f in folders if f is not None),
        n_cameras=n_cameras,
    )
    return _load_folders(
        root,
        layout,
        folders,
        regex=regex,
        first_camera=first_camera,
        relabel_train=relabel_train,
        on_corrupt=on_corrupt,
        on_mismatch=on_mismatch,
        name=layout.name,
        hint="Check first_camera and n_cameras.",
    )


_MSMT_CAMERA = re.compile(r"^[^_]+_[^_]+_(\d+)_")


def _read_list(list_path, image_dir):
    """``(paths, pids, cameras)`` of an MSMT17 list (``relative/path.jpg pid``)."""
    paths, pids, cameras, bad = [], [], [], []
    with open(list_path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if not fields:
                continue
            # the camera is the 3rd field of the name: 0000_000_01_0303morning_0015_0.jpg
            match = _MSMT_CAMERA.match(fields[0].rsplit("/", 1)[-1])
            if len(fields) != 2 or match is None or not fields[1].lstrip("-").isdigit():
                bad.append(f"line {number}: {line.strip()!r}")
                continue
            paths.append(os.path.join(image_dir, fields[0]))
            pids.append(int(fields[1]))
            cameras.append(int(match.group(1)))
    if bad:
        raise ValueError(
            f"{len(bad)} malformed line(s) in {list_path!r}: "
            f"{format_names(bad, 5, quote=False)}. "
            "Each line must be 'relative/path.jpg pid', the file named "
            f"like {MSMT17.example.split('/')[-1]!r} (camera in the 3rd field)."
        )
    if not paths:
        raise ValueError(f"{list_path!r} lists no image.")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image(s) listed in {list_path!r} are not in "
            f"{image_dir!r}: {format_names(missing, 5)}."
        )
    return paths, np.asarray(pids, np.int64), np.asarray(cameras, np.int64)


@validate_params({**_COMMON, "include_val": ["boolean"]},
                 prefer_skip_nested_validation=True)
def load_msmt17(root, *, relabel_train=False, include_val=False, on_corrupt="raise"):
    """Load the MSMT17 dataset (V1 or V2) from a local folder.

    Reads the lists ``list_train.txt`` (images under ``train/``),
    ``list_query.txt`` and ``list_gallery.txt`` (under ``test/``); each line
    is ``relative/path.jpg pid``, and the camera is the third field of the
    file name (``0000_000_01_0303morning_0015_0.jpg``: camera 1). MSMT17_V2
    names the folders ``mask_train_v2/`` and ``mask_test_v2/``. Nothing is
    downloaded.

    Read more in the :ref:`User Guide <datasets>`.

    Parameters
    ----------
    root : str or path-like
        The ``MSMT17_V1`` or ``MSMT17_V2`` folder, or its parent.
    relabel_train : bool, default=False
        Map the train person ids to ``0..n-1`` (in sorted order).
    include_val : bool, default=False
        Add the images of ``list_val.txt`` (train persons, under ``train/``)
        to the train part. Published results train on ``list_train.txt``
        only.
    on_corrupt : {"raise", "skip", "ignore"}, default="raise"
        Unreadable images: raise one error listing all, leave them out with a
        warning, or do not open the files at all. Listed files that do not
        exist are an error in every case.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``train``, ``query`` and ``gallery`` (each with ``paths``, ``pids``,
        ``camids``, cameras 0-based), ``root``, ``name`` (``"MSMT17"``) and
        ``DESCR``; see :func:`load_market1501`.

    Raises
    ------
    FileNotFoundError
        If ``root`` holds no MSMT17 layout, or a listed image is missing.
    ValueError
        If a list has a malformed line or a camera is outside 1..15.
    OSError
        If ``on_corrupt="raise"`` and some images cannot be read.

    Notes
    -----
    The lists number the train persons (0..1040) and the test persons
    (0..3059) separately: the same id in train and in query/gallery is not
    the same person. Read whole: 30,248 train images, 11,659 queries and
    82,161 gallery images; 15 cameras.

    Examples
    --------
    >>> import os, tempfile
    >>> from PIL import Image
    >>> from sklearn_ecluster.datasets import load_msmt17
    >>> tmp = tempfile.TemporaryDirectory()
    >>> root = os.path.join(tmp.name, "MSMT17_V1")
    >>> lists = {
    ...     "train": {"list_train.txt": ["0000/0000_000_01_0303morning_0015_0.jpg 0",
    ...                                  "0000/0000_001_05_0303morning_0020_1.jpg 0"]},
    ...     "test": {"list_query.txt": ["0000/0000_000_15_0303noon_0101_0.jpg 0"],
    ...              "list_gallery.txt": ["0000/0000_002_03_0303noon_0203_0.jpg 0"]},
    ... }
    >>> for folder, files in lists.items():
    ...     for list_name, lines in files.items():
    ...         for line in lines:
    ...             path = os.path.join(root, folder, line.split()[0])
    ...             os.makedirs(os.path.dirname(path), exist_ok=True)
    ...             Image.new("RGB", (64, 128)).save(path)
    ...         with open(os.path.join(root, list_name), "w") as f:
    ...             _ = f.write("\\n".join(lines) + "\\n")
    >>> data = load_msmt17(tmp.name)
    >>> data.train.camids, data.query.camids, data.gallery.camids
    (array([0, 4]), array([14]), array([2]))
    >>> tmp.cleanup()
    """
    root = find_dataset_dir(root, MSMT17)
    # MSMT17_V2 renamed the image folders; find_dataset_dir checked one exists
    train_dir, test_dir = (
        next(
            os.path.join(root, d) for d in names if os.path.isdir(os.path.join(root, d))
        )
        for names in (("train", "mask_train_v2"), ("test", "mask_test_v2"))
    )
    sources = {
        "train": [("list_train.txt", train_dir)],
        "query": [("list_query.txt", test_dir)],
        "gallery": [("list_gallery.txt", test_dir)],
    }
    if include_val:
        if not os.path.isfile(os.path.join(root, "list_val.txt")):
            raise FileNotFoundError(
                f"include_val=True but {os.path.join(root, 'list_val.txt')!r} "
                f"does not exist. Found in {str(root)!r}: {describe_entries(root)}."
            )
        sources["train"].append(("list_val.txt", train_dir))
    parts = {}
    for part, lists in sources.items():
        read = [_read_list(os.path.join(root, name), d) for name, d in lists]
        paths = [p for r in read for p in r[0]]
        cameras = np.concatenate([r[2] for r in read])
        names = [os.path.basename(p) for p in paths]
        camids = _check_cameras(
            names,
            cameras,
            1,
            MSMT17.n_cameras,
            os.path.join(root, lists[0][0]),
            _OTHER_DATASET,
        )
        parts[part] = (paths, np.concatenate([r[1] for r in read]), camids)
    notes = ["The train and test person ids are numbered separately."]
    if include_val:
        notes.append("The train part includes list_val.txt.")
    return _finish(
        parts,
        root=root,
        name=MSMT17.name,
        layout=MSMT17,
        relabel_train=relabel_train,
        on_corrupt=on_corrupt,
        notes=notes,
    )


@validate_params(
    {
        **_COMMON,
        "split": [Interval(Integral, 0, None, closed="left")],
        "n_train_ids": [Interval(Integral, 1, None, closed="left")],
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
        "on_mismatch": _ON_MISMATCH,
    },
    prefer_skip_nested_validation=True,
)
def load_prid450s(
    root,
    *,
    split=0,
    n_train_ids=225,
    random_state=None,
    relabel_train=False,
    on_corrupt="raise",
    on_mismatch="raise",
):
    """Load PRID 450S from a local folder, split into train and test persons.

    PRID 450S has 450 persons, each seen once by each of two cameras, in
    ``images/PPPPCCC.png`` (person ``PPPP``, camera ``CCC``: ``001`` or
    ``002``). The usual protocol splits the persons at random into 225 train
    and 225 test persons; the test persons' camera-1 images are the queries
    and their camera-2 images the gallery. Nothing is downloaded.

    Read more in the :ref:`User Guide <datasets>`.

    Parameters
    ----------
    root : str or path-like
        The ``PRID450S`` folder (which holds ``images/``), or its parent.
    split : int, default=0
        Index of the random split (the protocol averages over 10 splits,
        ``split=0..9``). The same ``split`` and ``random_state`` always give
        the same persons on every machine.
    n_train_ids : int, default=225
        Number of train persons; the others are the test persons.
    random_state : int, default=None
        Seed mixed with ``split`` to draw the split; ``None`` uses ``split``
        alone. The global random state is not used.
    relabel_train : bool, default=False
        Map the train person ids to ``0..n-1`` (in sorted order).
    on_corrupt : {"raise", "skip", "ignore"}, default="raise"
        Unreadable images: raise one error listing all, leave them out with a
        warning, or do not open the files at all.
    on_mismatch : {"raise", "skip"}, default="raise"
        Image files whose names are not ``PPPPCCC``: raise, or leave them out
        with a warning.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``train`` (both cameras' images of the train persons), ``query``
        (camera 1 of the test persons) and ``gallery`` (camera 2 of the test
        persons), each with ``paths``, ``pids`` and ``camids`` (0-based);
        ``root``, ``name`` (``"PRID450S"``) and ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If ``root`` holds no ``images/`` folder.
    ValueError
        If a parameter is invalid, a file name does not parse or a camera is
        not 1 or 2.
    OSError
        If ``on_corrupt="raise"`` and some images cannot be read.

    Examples
    --------
    >>> import os, tempfile
    >>> from PIL import Image
    >>> from sklearn_ecluster.datasets import load_prid450s
    >>> tmp = tempfile.TemporaryDirectory()
    >>> os.makedirs(os.path.join(tmp.name, "PRID450S", "images"))
    >>> for person in range(1, 5):
    ...     for camera in (1, 2):
    ...         name = f"{person:04d}{camera:03d}.png"
    ...         Image.new("RGB", (32, 64)).save(
    ...             os.path.join(tmp.name, "PRID450S", "images", name))
    >>> data = load_prid450s(tmp.name, n_train_ids=2)
    >>> len(data.train.paths), len(data.query.paths), len(data.gallery.paths)
    (4, 2, 2)
    >>> data.query.camids, data.gallery.camids
    (array([0, 0]), array([1, 1]))
    >>> bool((data.query.pids == data.gallery.pids).all())
    True
    >>> tmp.cleanup()
    """
    split = int(split)
    random_state = None if random_state is None else int(random_state)
    root = find_dataset_dir(root, PRID450S)
    folder = os.path.join(root, "images")
    paths, pids, camids, _ = _read_folder(
        folder,
        re.compile(r"^(\d{4})(\d{3})\.\w+$"),
        first_camera=1,
        n_cameras=PRID450S.n_cameras,
        on_mismatch=on_mismatch,
        hint="PRID450S names are PPPPCCC.png with camera 001 or 002.",
    )
    ids = np.unique(pids)
    if len(ids) < 2:
        raise ValueError(f"{folder!r} holds {len(ids)} person(s); a split needs 2.")
    n_train_ids = check_scalar(n_train_ids, "n_train_ids", Integral, min_val=1,
                               max_val=len(ids) - 1)
    # a local generator: split k names the same persons everywhere
    rng = np.random.default_rng(
        split if random_state is None else [random_state, split]
    )
    is_train = np.isin(pids, rng.permutation(ids)[:n_train_ids])
    paths = np.asarray(paths, dtype=object)
    parts = {}
    for part, mask in (
        ("train", is_train),
        ("query", ~is_train & (camids == 0)),
        ("gallery", ~is_train & (camids == 1)),
    ):
        parts[part] = (list(paths[mask]), pids[mask], camids[mask])
    notes = [
        f"Split {split} (random_state={random_state}): {n_train_ids} train and "
        f"{len(ids) - n_train_ids} test persons; query = camera 1, gallery = "
        "camera 2 of the test persons.",
    ]
    return _finish(
        parts,
        root=root,
        name=PRID450S.name,
        layout=PRID450S,
        relabel_train=relabel_train,
        on_corrupt=on_corrupt,
        notes=notes,
    )
