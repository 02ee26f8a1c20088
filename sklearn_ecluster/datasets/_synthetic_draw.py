"""Procedural pedestrians, scenes and cameras for :func:`make_synthetic_reid`.

Everything is drawn with NumPy array operations on the pixel grid (no
per-pixel Python loops): each body part, bag, occluder or background element
is a soft-edged mask (coverage in [0, 1], anti-aliased over one pixel)
composited with a colour or a colour pattern.

Three kinds of random draws, each from a generator passed in:

- an *identity* (:func:`sample_identity`): clothing colours and patterns,
  body proportions, hair, bag; fixed for all images of the person;
- a *camera* (:func:`sample_camera`): illumination, colour cast, saturation,
  contrast, blur, noise, typical viewpoint and scale, background scene,
  occlusion rate; fixed for all images of the camera;
- an *image* (inside :func:`render`): pose, view (front, back, side),
  mirroring, scale and shift of the box, which part of the scene is behind,
  clutter and occluders.

Geometry is in "person units": ``Y`` from 0 (top of the head) to 1 (soles),
``X`` across the body, the person facing ``+X`` in side views.
"""

import numpy as np

# Clothing colours (RGB in [0, 1]) and how often they are worn: many people
# share dark, grey, white and denim clothes, which keeps colour alone from
# identifying a person.
_CLOTHES = np.array(
    [
        [0.08, 0.08, 0.09],  # black
        [0.22, 0.22, 0.24],  # charcoal
        [0.50, 0.50, 0.50],  # grey
        [0.90, 0.90, 0.88],  # white
        [0.10, 0.13, 0.30],  # navy
        [0.15, 0.30, 0.70],  # blue
        [0.30, 0.42, 0.60],  # denim
        [0.55, 0.70, 0.88],  # sky blue
        [0.75, 0.12, 0.12],  # red
        [0.45, 0.08, 0.12],  # maroon
        [0.90, 0.55, 0.65],  # pink
        [0.90, 0.50, 0.12],  # orange
        [0.90, 0.80, 0.20],  # yellow
        [0.15, 0.50, 0.25],  # green
        [0.40, 0.42, 0.20],  # olive
        [0.80, 0.72, 0.55],  # beige
        [0.40, 0.26, 0.15],  # brown
        [0.40, 0.20, 0.50],  # purple
    ],
    dtype=np.float32,
)
_CLOTHES_P = np.array(
    [4, 3, 2, 3, 2.5, 1.5, 2, 1, 1.2, 0.8, 0.8, 0.5, 0.6, 0.8, 0.8, 1.2, 1, 0.6]
)
_CLOTHES_P = _CLOTHES_P / _CLOTHES_P.sum()
# scene colours, shared by all cameras: concrete, walls, brick, glass, trees
_URBAN = [1, 2, 3, 4, 6, 9, 13, 14, 15, 16]
_SKIN = np.array(
    [
        [0.96, 0.80, 0.69],
        [0.88, 0.67, 0.52],
        [0.76, 0.54, 0.38],
        [0.55, 0.37, 0.25],
        [0.36, 0.23, 0.15],
    ],
    dtype=np.float32,
)
_HAIR = np.array(
    [
        [0.06, 0.05, 0.05],  # black
        [0.20, 0.12, 0.07],  # dark brown
        [0.40, 0.25, 0.13],  # brown
        [0.80, 0.67, 0.40],  # blond
        [0.60, 0.60, 0.60],  # grey
        [0.50, 0.20, 0.08],  # auburn
    ],
    dtype=np.float32,
)
_HAIR_P = np.array([5, 3, 1.5, 0.8, 0.5, 0.4])
_HAIR_P = _HAIR_P / _HAIR_P.sum()

PATTERNS = ("plain", "hstripes", "vstripes", "checks", "logo")
LOWER = ("trousers", "shorts", "skirt")
BAGS = ("none", "backpack", "handbag", "shoulder")
VIEWS = ("front", "back", "side")


def _floats(d):
    """NumPy scalars to Python floats, so that drawing stays in float32."""
    return {k: float(v) if isinstance(v, np.floating) else v for k, v in d.items()}


def _muted(rng, palette=_CLOTHES[_URBAN], p=None):
    """A dull scene colour: mostly grey, darker or lighter."""
    c = _colour(rng, palette, p, jitter=0.05)
    c = (c.mean() + 0.35 * (c - c.mean())) * rng.uniform(0.55, 1.15)
    return c.astype(np.float32)


def _colour(rng, palette=_CLOTHES, p=_CLOTHES_P, jitter=0.05):
    """A palette colour with a small per-person shift of shade and hue."""
    c = palette[rng.choice(len(palette), p=p)]
    c = c * rng.uniform(0.85, 1.15) + rng.normal(0.0, jitter, 3)
    return np.clip(c, 0.02, 0.98).astype(np.float32).reshape(3, 1, 1)


def sample_identity(rng):
    """Draw the appearance of one person (a dict of numbers and arrays)."""
    return _floats({
        "height": rng.uniform(0.88, 0.98),
        "width": rng.uniform(0.85, 1.25),
        "hips": rng.uniform(0.78, 1.0),
        "leg": rng.uniform(0.44, 0.53),
        "head": rng.uniform(0.9, 1.12),
        "skin": _colour(rng, _SKIN, None, 0.03),
        "hair": _colour(rng, _HAIR, _HAIR_P, 0.03),
        "long_hair": rng.random() < 0.3,
        "hat": _colour(rng) if rng.random() < 0.12 else None,
        "upper": _colour(rng),
        "upper2": _colour(rng),
        "pattern": PATTERNS[rng.choice(5, p=[0.45, 0.2, 0.1, 0.1, 0.15])],
        "period": rng.uniform(0.03, 0.08),
        "long_sleeves": rng.random() < 0.6,
        "jacket": _colour(rng) if rng.random() < 0.2 else None,  # open jacket
        "lower": _colour(rng),
        "lower_kind": LOWER[rng.choice(3, p=[0.7, 0.15, 0.15])],
        "shoes": _colour(rng, jitter=0.02) * 0.6,
        "bag": BAGS[rng.choice(4, p=[0.45, 0.25, 0.15, 0.15])],
        "bag_colour": _colour(rng),
        "bag_side": rng.choice((-1.0, 1.0)),
    })


def sample_camera(rng, strength=1.0):
    """Draw the settings of one camera; ``strength`` scales how much cameras differ."""
    k = strength
    cast = np.exp(rng.normal(0.0, 0.035 * k, 3))
    cast /= np.exp(np.log(cast).mean())  # a colour cast, not a brightness change
    # a long strip of scene (shop fronts, walls, hedges) of muted colours,
    # from which each box crops a random part: backgrounds of one camera look
    # alike without being the same
    n_seg = 16
    widths = rng.uniform(0.3, 1.5, n_seg)
    scene = {
        "horizon": rng.uniform(0.45, 0.85),
        "edges": np.concatenate([[0.0], np.cumsum(widths)]).astype(np.float32),
        "walls": np.concatenate([_muted(rng) for _ in range(n_seg)], axis=2),
        "floors": np.concatenate([_muted(rng) for _ in range(3)], axis=2),
        "wall_kind": rng.choice(("panels", "bricks", "windows", "foliage")),
        "floor_kind": rng.choice(("tiles", "stripes", "plain")),
        "period": rng.uniform(0.08, 0.4),
        "contrast": rng.uniform(0.1, 0.35),
        "waves": rng.normal(0.0, 12.0, (3, 2)).tolist(),
        "phases": rng.uniform(0.0, 2 * np.pi, 3).tolist(),
    }
    views = rng.dirichlet((1.2, 1.2, 1.0))  # some cameras see mostly fronts, ...
    return _floats({
        "gain": float(np.exp(rng.normal(0.0, 0.15 * k))),
        "cast": cast.astype(np.float32).reshape(3, 1, 1),
        "saturation": float(np.clip(1.0 + rng.normal(0.0, 0.15 * k), 0.35, 1.5)),
        "gamma": float(np.exp(rng.normal(0.0, 0.1 * k))),
        "light": rng.normal(0.0, 0.5),  # side the light comes from
        "blur": rng.uniform(0.0, 1.3) * min(1.0, k),  # pixels at height 128
        "noise": rng.uniform(0.004, 0.025) * min(1.0, k),
        "scale": rng.uniform(0.86, 1.0),
        "views": views,
        "mirror": rng.uniform(0.2, 0.8),
        "occlusion": rng.uniform(0.3, 1.7),  # times the dataset's occlusion rate
        "scene": _floats(scene),
    })


# --- soft masks (coverage in [0, 1]); ``aa`` is the pixel size in the units used


def _rect(X, Y, x0, x1, y0, y1, aa):
    d = np.minimum(np.minimum(X - x0, x1 - X), np.minimum(Y - y0, y1 - Y))
    return np.clip(d / aa + 0.5, 0.0, 1.0)


def _ellipse(X, Y, cx, cy, rx, ry, aa):
    r = np.sqrt(((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2)
    return np.clip(0.5 - (r - 1.0) * min(rx, ry) / aa, 0.0, 1.0)


def _segment(X, Y, p, q, half_width, aa):
    """A thick line (strap, pole) from point ``p`` to point ``q``."""
    px, py = p
    dx, dy = q[0] - px, q[1] - py
    t = np.clip(((X - px) * dx + (Y - py) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    d = np.sqrt((X - px - t * dx) ** 2 + (Y - py - t * dy) ** 2)
    return np.clip((half_width - d) / aa + 0.5, 0.0, 1.0)


def _paint(img, alpha, mask, colour):
    """Composite ``colour`` (RGB or an image) over ``img`` where ``mask`` covers."""
    img += mask * (colour - img)
    if alpha is not None:
        alpha += mask - alpha * mask


def _pattern(ident, X, Y, top, view):
    """Colour field of the upper garment: plain, stripes, checks or a logo."""
    c1, c2 = ident["upper"], ident["upper2"]
    kind, period = ident["pattern"], ident["period"]
    if kind == "plain" or (kind == "logo" and view != "front"):
        return c1
    if kind == "logo":
        on = _rect(X, Y, -0.04, 0.04, top + 0.06, top + 0.14, 0.01)
    else:
        h = ((Y - top) / period) % 1.0 < 0.5
        v = ((X + 1.0) / period) % 1.0 < 0.5
        on = {"hstripes": h, "vstripes": v, "checks": h ^ v}[kind].astype(np.float32)
    on = np.broadcast_to(on, np.broadcast_shapes(np.shape(X), np.shape(Y)))
    return c1 + on * (c2 - c1)


def _person(ident, X, Y, aa, view, stride, swing):
    """Colour and coverage of a person in person coordinates ``X``, ``Y``."""
    shape = np.broadcast_shapes(X.shape, Y.shape)
    img = np.zeros((3,) + shape, np.float32)
    alpha = np.zeros(shape, np.float32)
    side = view == "side"
    w = ident["width"]
    head_r = 0.058 * ident["head"]
    head_y = 1.1 * head_r
    top = 2.0 * head_r + 0.012  # shoulders
    hip = 1.0 - ident["leg"]
    sw = 0.125 * w * (0.62 if side else 1.0)
    hw = sw * ident["hips"]
    aw = 0.038 * w
    lw = 0.052 * w
    knee = hip + 0.5 * (0.97 - hip)
    upper = _pattern(ident, X, Y, top, view)
    skin, hair = ident["skin"], ident["hair"]
    bag, bag_c, bag_side = ident["bag"], ident["bag_colour"], ident["bag_side"]

    def arm(x0, slope):
        xc = x0 + slope * (Y - top)
        m = _rect(X - xc, Y, -aw, aw, top + 0.005, hip + 0.06, aa)
        sleeve_end = hip - 0.01 if ident["long_sleeves"] else top + 0.09
        cut = np.clip((sleeve_end - Y) / aa + 0.5, 0.0, 1.0)
        _paint(img, alpha, m * cut, ident["jacket"] if ident["jacket"] is not None
               else ident["upper"])
        _paint(img, alpha, m * (1.0 - cut), skin)
        _paint(img, alpha, _ellipse(X, Y, x0 + slope * (hip + 0.06 - top),
                                    hip + 0.065, aw * 1.1, 0.025, aa), skin)

    # long hair hangs behind the body in front and side views
    if ident["long_hair"] and view != "back":
        _paint(img, alpha, _rect(X, Y, -0.8 * head_r, 0.8 * head_r, head_y,
                                 top + 0.1, aa), hair)
    if bag == "backpack" and side:
        _paint(img, alpha, _rect(X, Y, -sw - 0.075, -sw + 0.01, top + 0.02,
                                 top + 0.26, aa), bag_c)
    # legs: scissor in side views, slightly apart otherwise
    for s in (-1.0, 1.0):
        if side:
            xc = s * stride * (Y - hip)
        else:
            xc = s * (lw + 0.004 + 0.15 * abs(stride) * (Y - hip))
        leg = _rect(X - xc, Y, -lw, lw, hip - 0.02, 0.975, aa)
        if ident["lower_kind"] == "trousers":
            _paint(img, alpha, leg, ident["lower"])
        else:
            cut = np.clip((knee - Y) / aa + 0.5, 0.0, 1.0)
            _paint(img, alpha, leg * cut, ident["lower"])
            _paint(img, alpha, leg * (1.0 - cut), skin)
        toe = 0.05 if side else 0.0  # feet point the way the person walks
        _paint(img, alpha, _rect(X - xc, Y, -lw - 0.004, lw + toe, 0.955, 1.0, aa),
               ident["shoes"])
    if ident["lower_kind"] == "skirt":
        t = np.clip((Y - hip) / (knee - hip), 0.0, 1.0)
        half = hw * (1.0 + 0.5 * t)
        _paint(img, alpha, _rect(X / half, Y, -1.0, 1.0, hip - 0.02, knee, aa),
               ident["lower"])
    else:
        _paint(img, alpha, _rect(X, Y, -hw, hw, hip - 0.02, hip + 0.05, aa),
               ident["lower"])
    if side:  # the far arm, behind the torso
        arm(0.0, -swing)
    # torso: a trapezoid from the shoulders to the hips
    t = np.clip((Y - top) / (hip - top), 0.0, 1.0)
    half = sw + (hw - sw) * t
    torso = np.clip(np.minimum(half - np.abs(X), np.minimum(Y - top, hip + 0.02 - Y))
                    / aa + 0.5, 0.0, 1.0)
    _paint(img, alpha, torso, upper)
    if ident["jacket"] is not None and not side:
        flap = np.clip((np.abs(X) - 0.35 * half) / aa + 0.5, 0.0, 1.0)
        _paint(img, alpha, torso * (flap if view == "front" else 1.0), ident["jacket"])
    if bag == "backpack" and view == "back":
        _paint(img, alpha, _rect(X, Y, -0.075 * w, 0.075 * w, top + 0.02, top + 0.25,
                                 aa), bag_c)
    elif bag == "backpack" and view == "front":
        for s in (-1.0, 1.0):
            _paint(img, alpha, _rect(X, Y, s * 0.055 * w - 0.008, s * 0.055 * w + 0.008,
                                     top, hip - 0.05, aa), bag_c * 0.8)
    if bag == "shoulder" and not side:
        p = (-bag_side * sw * 0.8, top)
        q = (bag_side * hw, hip)
        _paint(img, alpha, _segment(X, Y, p, q, 0.008, aa), bag_c * 0.8)
    if not side:
        arm(-(sw + aw * 0.7), -swing * 0.3)
        arm(sw + aw * 0.7, swing * 0.3)
    else:
        arm(0.0, swing)
    if bag == "handbag":
        x0 = bag_side * (sw + aw * 1.5) if not side else 0.01
        _paint(img, alpha, _rect(X, Y, x0 - 0.035, x0 + 0.035, hip + 0.02,
                                 hip + 0.13, aa), bag_c)
    elif bag == "shoulder":
        x0 = bag_side * (hw + 0.03) if not side else -hw - 0.02
        _paint(img, alpha, _rect(X, Y, x0 - 0.035, x0 + 0.035, hip - 0.06,
                                 hip + 0.04, aa), bag_c)
    # head: face in front, hair at the back, half and half from the side
    head = _ellipse(X, Y, 0.0, head_y, 0.8 * head_r, head_r, aa)
    _paint(img, alpha, _rect(X, Y, -0.3 * head_r, 0.3 * head_r, head_y, top + 0.01, aa),
           skin)
    if view == "back":
        _paint(img, alpha, head, hair)
    else:
        _paint(img, alpha, head, skin)
        cap = _ellipse(X, Y, -0.15 * head_r if side else 0.0, head_y - 0.25 * head_r,
                       0.85 * head_r, 0.85 * head_r, aa)
        if side:
            cap = np.maximum(cap, head * np.clip(-X / aa, 0.0, 1.0))
        _paint(img, alpha, cap * np.clip((head_y + 0.2 * head_r - Y) / aa, 0, 1)
               if not side else cap, hair)
    if ident["long_hair"] and view == "back":
        _paint(img, alpha, _rect(X, Y, -0.85 * head_r, 0.85 * head_r, head_y,
                                 top + 0.1, aa), hair)
    if ident["hat"] is not None:
        _paint(img, alpha, _ellipse(X, Y, 0.0, head_y - 0.5 * head_r, 0.95 * head_r,
                                    0.55 * head_r, aa) * (Y < head_y - 0.3 * head_r),
               ident["hat"])
    return img, alpha


def _scene(cam, sx, sy, aa):
    """Background of ``cam`` seen through scene coordinates ``sx``, ``sy``."""
    sc = cam["scene"]
    shape = np.broadcast_shapes(sx.shape, sy.shape)
    p = sc["period"]
    waves = sum(
        np.sin(a * sx + b * sy + ph)
        for (a, b), ph in zip(sc["waves"], sc["phases"], strict=True)
    ) / 3.0
    edges = sc["edges"]
    u = sx % edges[-1]
    seg = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, len(edges) - 2)
    wall = np.broadcast_to(sc["walls"][:, 0, seg], (3,) + shape).copy()
    kind = sc["wall_kind"]
    if kind == "panels":  # dark joints between the parts of the strip
        joint = np.minimum(u - edges[seg], edges[seg + 1] - u)
        wall *= 0.6 + 0.4 * np.clip(joint / aa - 1.5, 0.0, 1.0)
    elif kind == "bricks":
        row = np.floor(sy / (0.25 * p))
        u = (sx / p + 0.5 * (row % 2)) % 1.0
        v = (sy / (0.25 * p)) % 1.0
        mortar = np.minimum(np.minimum(u, 1 - u) * p, np.minimum(v, 1 - v) * 0.25 * p)
        wall *= 0.55 + 0.45 * np.clip(mortar / aa - 0.5, 0.0, 1.0)
    elif kind == "windows":
        u = (sx / p) % 1.0
        v = (sy / p) % 1.0
        glass = _rect(u, v, 0.15, 0.85, 0.1, 0.8, aa / p)
        wall += glass * (0.45 - 0.4 * wall)  # glass reflects the sky
    else:  # foliage
        wall *= 1.0 + 0.8 * sc["contrast"] * np.sin(7 * sx / p) * np.sin(5 * sy / p)
    wall *= 1.0 + sc["contrast"] * waves  # uneven light and dirt
    # the floor changes along the strip too, more slowly than the walls
    patch = np.floor(sx / edges[-1] * 3.0).astype(np.int64) % 3
    floor = np.broadcast_to(sc["floors"][:, 0, patch], (3,) + shape).copy()
    fk = sc["floor_kind"]
    if fk == "tiles":
        u = (sx / p) % 1.0
        v = (sy / (0.5 * p)) % 1.0
        grout = np.minimum(np.minimum(u, 1 - u) * p, np.minimum(v, 1 - v) * 0.5 * p)
        floor *= 0.75 + 0.25 * np.clip(grout / aa - 0.5, 0.0, 1.0)
    elif fk == "stripes":
        on = ((sx / p) % 1.0 < 0.5).astype(np.float32)
        floor += on * (0.85 - floor) * 0.5
    floor *= 1.0 + 0.6 * sc["contrast"] * waves
    below = np.clip((sy - sc["horizon"]) / aa + 0.5, 0.0, 1.0)
    return wall * (1.0 - below) + floor * below


def _blur(img, sigma):
    """Separable Gaussian blur with edge padding (sigma in pixels)."""
    if sigma < 0.3:
        return img
    r = int(np.ceil(2.5 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2).astype(np.float32)
    k /= k.sum()
    h, w = img.shape[1:]
    pad = np.pad(img, ((0, 0), (r, r), (0, 0)), mode="edge")
    img = sum(k[i] * pad[:, i : i + h] for i in range(2 * r + 1))
    pad = np.pad(img, ((0, 0), (0, 0), (r, r)), mode="edge")
    return sum(k[i] * pad[:, :, i : i + w] for i in range(2 * r + 1))


def _occluders(img, rng, x, y, aa, rate):
    """Random occluders in front of the person: poles, objects, passers-by."""
    n = rng.poisson(rate)
    for _ in range(min(n, 3)):
        kind = rng.choice(("pole", "bottom", "side"), p=(0.35, 0.35, 0.3))
        colour = _colour(rng, jitter=0.08)
        if kind == "pole":
            x0 = float(rng.uniform(-0.22, 0.22))
            half = float(rng.uniform(0.01, 0.035))
            tilt = float(rng.normal(0.0, 0.03))
            m = _rect(x - x0 - tilt * y, y, -half, half, -1.0, 2.0, aa)
        elif kind == "bottom":  # bench, car, railing
            y0 = float(rng.uniform(0.6, 0.85))
            x0, x1 = sorted(rng.uniform(-0.6, 0.6, 2).tolist())
            m = _rect(x, y, min(x0, -0.1), max(x1, 0.1), y0, 2.0, aa)
        else:  # a passer-by's shoulder or bag at the left or right edge
            s = float(rng.choice((-1.0, 1.0)))
            edge = s * float(rng.uniform(0.12, 0.2))
            m = _ellipse(x, y, edge + s * 0.12, float(rng.uniform(0.3, 0.7)), 0.13,
                         float(rng.uniform(0.2, 0.45)), aa)
        shade = 0.7 + 0.3 * np.clip(1.0 - np.abs(x) * 2.0, 0.0, 1.0)
        _paint(img, None, m, colour * shade)


def render(rng, ident, cam, size, *, occlusion=0.3, fragment=False):
    """Draw one image of ``ident`` (or of the scene alone) seen by ``cam``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the per-image randomness (pose, view, box, clutter).
    ident : dict or None
        A person from :func:`sample_identity`; None draws a false detection
        (background, clutter and occluders only).
    cam : dict
        A camera from :func:`sample_camera`.
    size : (int, int)
        ``(height, width)`` of the image.
    occlusion : float
        Expected number of occluders per image (times the camera's own rate).
    fragment : bool
        Misalign the box badly, so that only part of the person shows (the
        "junk" images of Market-1501).

    Returns
    -------
    image : ndarray of shape (height, width, 3), dtype uint8
        Drawing works on ``(3, height, width)`` planes (fast broadcasting of
        the masks); the result is transposed once at the end.
    """
    h, w = size
    aa = 1.0 / h  # one pixel, in units of the image height
    y = ((np.arange(h, dtype=np.float32) + 0.5) / h)[:, None]
    x = ((np.arange(w, dtype=np.float32) + 0.5 - 0.5 * w) / h)[None, :]

    # the part of the camera's scene behind this box
    zoom = 1.0 / cam["scale"]
    ox, oy = float(rng.uniform(0.0, 20.0)), float(rng.normal(0.0, 0.12))
    img = _scene(cam, x * zoom + ox, y * zoom + oy, aa * zoom).astype(np.float32)
    img *= float(np.exp(rng.normal(0.0, 0.25)))  # sun, shade
    for _ in range(rng.poisson(1.5)):  # clutter behind the person
        c = _colour(rng, jitter=0.1)
        m = _ellipse(x, y, float(rng.uniform(-0.3, 0.3)), float(rng.uniform(0.1, 0.9)),
                     float(rng.uniform(0.03, 0.12)), float(rng.uniform(0.05, 0.3)), aa)
        _paint(img, None, m, c * 0.8)

    light = cam["light"]
    if ident is not None:
        view = VIEWS[rng.choice(3, p=cam["views"])]
        mirror = -1.0 if rng.random() < cam["mirror"] else 1.0
        # detector boxes are loose: the person is off-centre and mis-scaled
        scale = cam["scale"] * ident["height"] * float(np.exp(rng.normal(0.0, 0.08)))
        dx, dy = float(rng.normal(0.0, 0.05)), float(rng.normal(0.0, 0.04))
        if fragment:
            scale *= float(rng.uniform(1.5, 2.5))
            dx += float(rng.choice((-1.0, 1.0))) * float(rng.uniform(0.1, 0.3))
            dy += float(rng.uniform(-0.6, 0.4)) * scale
        feet = 0.5 + 0.5 * scale + dy
        X = mirror * (x - dx) / scale
        Y = (y - (feet - scale)) / scale
        phase = float(rng.uniform(-1.0, 1.0))
        stride = 0.35 * phase if view == "side" else 0.1 * phase
        person, alpha = _person(ident, X, Y, aa / scale, view, stride, -0.4 * phase)
        # shadow on the floor, then the person, rounded and lit from one side
        shadow = _ellipse(x, y, dx, feet - 0.005, 0.2 * scale, 0.025 * scale, aa)
        img *= 1.0 - 0.45 * shadow
        bulge = np.clip(1.0 - 0.35 * (X / 0.17) ** 2 + 0.25 * light * mirror * X / 0.17,
                        0.45, 1.3)
        _paint(img, None, alpha, person * bulge)
    _occluders(img, rng, x, y, aa, occlusion * cam["occlusion"])

    # the camera: illumination, colour cast, saturation, contrast, blur, noise
    img *= cam["gain"] * float(np.exp(rng.normal(0.0, 0.08))) * cam["cast"]
    grey = img.mean(axis=0)
    img = grey + cam["saturation"] * (img - grey)
    img = np.clip(img, 0.0, 1.0) ** cam["gamma"]
    img = _blur(img, cam["blur"] * h / 128.0)
    # sensor noise, mostly in brightness (JPEG keeps little colour noise)
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    img += cam["noise"] * (0.85 * noise[:1] + 0.3 * noise)
    img = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(img.transpose(1, 2, 0))
