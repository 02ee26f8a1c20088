"""The merge criterion D(A, B) = base(A, B) + lam * R(A, B) (SPEC 2-4).

Everything a linkage needs about a pair of clusters is either the pair value
``s[a, b]`` kept in the pair matrix (a sum of sample distances for the energy
and average linkages, a minimum for single linkage) or a per-cluster statistic
kept in :class:`ClusterStats`. This module turns those into criterion values
for a block of cluster pairs; it is the one place where the paper's Eq. 6-8
are evaluated.

base(A, B), with n = |A|, m = |B|:

- energy:   E = 2 s_AB / (n m) - s_AA / n^2 - s_BB / m^2       (Eq. 6)
- energy, weighted: n m / (n + m) * E                        (Szekely-Rizzo)
- average:  s_AB / (n m)                                      (DBC, UPGMA)
- single:   s_AB = min distance                               (BUC)

R(A, B):

- "ssd":         SSD(A) + SSD(B)                               (Eq. 7-8)
- "ssd_merged":  SSD(A u B) = SSD(A) + SSD(B) + n m/(n+m) ||mu_A - mu_B||^2
- "size":        n + m                                         (BUC)
- "dispersion":  2 SSD(A)/n + 2 SSD(B)/m                       (DBC)
- None:          0
"""

from dataclasses import dataclass

import torch

LINKAGES = ("energy", "average", "single")
REGULARIZERS = ("ssd", "ssd_merged", "size", "dispersion")


@dataclass(frozen=True)
class Criterion:
    """The merge criterion D = base + lam * R, as one immutable value.

    Parameters
    ----------
    linkage : {"energy", "average", "single"}
    regularizer : {"ssd", "ssd_merged", "size", "dispersion"} or None
    lam : float
    weighted : bool
        The Szekely-Rizzo weight ``n m / (n + m)`` (energy linkage only).
    """

    linkage: str = "energy"
    regularizer: str | None = "ssd"
    lam: float = 0.9
    weighted: bool = False

    @property
    def regularized(self):
        """Whether R contributes (a regulariser with a non-zero weight)."""
        return self.regularizer is not None and self.lam != 0.0

    @property
    def reducible(self):
        """Whether the reducible engine (rounds of reciprocal nearest
        neighbours with a Lance-Williams update) builds this criterion's tree.

        Reducible means D(A u B, C) >= min(D(A, C), D(B, C)) whenever D(A, B)
        is the least of the three (SPEC 6c). True for single and average
        linkage and the weighted energy distance (Ward on sqrt(d)) without a
        regulariser. Single and average linkage with ``"ssd"``,
        ``"ssd_merged"`` or ``"size"`` are reducible too (the base is, and R
        of a union is at least R of each part), but the Lance-Williams update
        covers the base only, so they use the cached engine; the unweighted
        energy distance and the other regularised criteria are not reducible
        (the clustering guide gives a counterexample for each).
        """
        if self.regularized:
            return False
        return self.linkage in ("single", "average") or self.weighted

    @property
    def needs_moments(self):
        """Whether the cluster means and SSD must be tracked."""
        return needs_moments(self.regularizer)

    @property
    def pair_reduce(self):
        """How pair values combine under a merge: sums, or minima (single)."""
        return "amin" if self.linkage == "single" else "sum"

    def lance_williams(self, d_ak, d_bk, d_ab, n_a, n_b, n_k):
        """D(A u B, K) from D(A, K), D(B, K), D(A, B) and the sizes (reducible only).

        The Lance-Williams forms of the reducible criteria, exact consequences
        of the additivity of the pair sums (SPEC 5):

        - single: ``min(D(A, K), D(B, K))``;
        - average: ``(n_a D(A, K) + n_b D(B, K)) / (n_a + n_b)``;
        - weighted energy (Ward on sqrt(d), whose criterion is Ward's merge
          cost of points embedded with squared distances d):
          ``((n_a + n_k) D(A, K) + (n_b + n_k) D(B, K) - n_k D(A, B)) / (n_a + n_b + n_k)``.

        Broadcasts: ``d_ak``, ``d_bk`` (m, W), ``d_ab``, ``n_a``, ``n_b`` (m, 1),
        ``n_k`` (1, W).
        """
        if not self.reducible:
            raise ValueError(f"{self} is not reducible: no Lance-Williams update.")
        if self.linkage == "single":
            return torch.minimum(d_ak, d_bk)
        if self.linkage == "average":
            return (n_a * d_ak).addcmul_(n_b, d_bk).div_(n_a + n_b)
        # (n_a d_ak + n_b d_bk + n_k (d_ak + d_bk - d_ab)) / (n_a + n_b + n_k), in place
        out = torch.add(d_ak, d_bk).sub_(d_ab).mul_(n_k)
        return out.addcmul_(n_a, d_ak).addcmul_(n_b, d_bk).div_(n_a + n_b + n_k)

    def block(self, s_block, rows, cols, stats, *, symmetric=False, penalty=None,
              out=None):
        """Criterion values for the cluster pairs ``rows`` x ``cols``.

        See :func:`criterion_block`.
        """
        return criterion_block(
            s_block, rows, cols, stats, linkage=self.linkage,
            regularizer=self.regularizer, lam=float(self.lam),
            weighted=bool(self.weighted), symmetric=symmetric, penalty=penalty,
            out=out,
        )

    def pairs(self, s, u, v, stats):
        """Criterion values of the cluster pairs ``(u[e], v[e])`` (graph edges).

        The formula of :meth:`block` elementwise, ``u`` as the rows: an edge
        and the same pair of the dense upper triangle get the same value.
        """
        return criterion_block(
            s, u, v, stats, linkage=self.linkage, regularizer=self.regularizer,
            lam=float(self.lam), weighted=bool(self.weighted), paired=True,
        )


@dataclass
class ClusterStats:
    """Per-cluster statistics, one entry per active cluster (slot).

    Attributes
    ----------
    sizes : Tensor (K,)
        Cluster sizes, in the compute dtype.
    within : Tensor (K,) or None
        ``s[A, A]``: sum of distances over ordered pairs of A (energy only).
    ssd : Tensor (K,) or None
        Sum of squared deviations from the mean (float64 for accuracy).
    means : Tensor (K, d) or None
        Cluster means (needed to update SSD exactly and for "ssd_merged").
    """

    sizes: torch.Tensor
    within: torch.Tensor | None = None
    ssd: torch.Tensor | None = None
    means: torch.Tensor | None = None

    def select(self, keep):
        """Statistics of the slots ``keep`` (compaction after a merge step)."""
        return ClusterStats(
            sizes=self.sizes[keep],
            within=None if self.within is None else self.within[keep],
            ssd=None if self.ssd is None else self.ssd[keep],
            means=None if self.means is None else _compact_rows_(self.means, keep),
        )


def _compact_rows_(t, keep, block=1024):
    """``t[keep]`` moved to the front of ``t`` in place; returns that view.

    ``keep`` is ascending, so row p comes from row ``keep[p] >= p``: blocks
    copied in increasing order never overwrite a row still to be read, and
    the only temporary is one block (not a second (K, d) array).
    """
    k = keep.numel()
    for p0 in range(0, k, block):
        p1 = min(k, p0 + block)
        t[p0:p1] = t.index_select(0, keep[p0:p1])
    return t[:k]


def needs_moments(regularizer):
    """Whether the regulariser needs cluster means and SSD."""
    return regularizer in ("ssd", "ssd_merged", "dispersion")


def merged_moments(sizes, means, ssd, root, n_slots):
    """Sizes, means and SSD of the unions given by ``root`` (slot -> group slot).

    Uses SSD(G) = sum_i SSD(C_i) + sum_i n_i ||mu_i - mu_G||^2, which is exact
    and avoids the cancellation of ``sum ||x||^2 - n ||mu||^2``.
    """
    new_sizes = torch.zeros(n_slots, dtype=sizes.dtype, device=sizes.device)
    new_sizes.index_add_(0, root, sizes)
    wsum = torch.zeros((n_slots, means.shape[1]), dtype=means.dtype, device=means.device)
    wsum.index_add_(0, root, means * sizes.to(means.dtype).unsqueeze(1))
    safe = new_sizes.clamp(min=1).to(means.dtype).unsqueeze(1)
    new_means = wsum / safe
    dev = ((means - new_means[root]) ** 2).sum(1).to(torch.float64)
    dev = dev * sizes.to(torch.float64)
    new_ssd = torch.zeros(n_slots, dtype=torch.float64, device=ssd.device)
    new_ssd.index_add_(0, root, ssd + dev)
    return new_sizes, new_means, new_ssd


def _separable_reg(stats, regularizer):
    """Per-cluster part r_i of a regulariser R = r_i + r_j (None if not separable)."""
    if regularizer == "ssd":
        return stats.ssd
    if regularizer == "dispersion":
        return 2.0 * stats.ssd / stats.sizes.to(torch.float64)
    if regularizer == "size":
        return stats.sizes
    return None


def criterion_block(
    s_block, rows, cols, stats, *, linkage, regularizer, lam, weighted,
    symmetric=False, penalty=None, out=None, paired=False,
):
    """Criterion values D for the cluster pairs ``rows`` x ``cols``.

    Parameters
    ----------
    s_block : Tensor (len(rows), len(cols))
        Pair values for those pairs (not modified).
    rows, cols : LongTensor or slice
        Slots of the rows and columns of the block.
    stats : ClusterStats
    linkage, regularizer, lam, weighted
        The criterion (see the module docstring).
    symmetric : bool, default=False
        Evaluate with a formula whose rounding is symmetric in (a, b), so that
        D[a, b] and D[b, a] computed in two different blocks agree to the bit.
        The exact mode needs this for its nearest-neighbour cache; the batched
        mode looks at each pair once and takes the faster in-place form.
    penalty : Tensor (K,), default=None
        Added to both sides of every pair: +inf masks dead slots.
    out : Tensor, default=None
        Buffer of the block's shape to write into.
    paired : bool, default=False
        ``rows`` and ``cols`` are two slot vectors of one length and
        ``s_block`` the values of the pairs ``(rows[e], cols[e])`` (the edges
        of the graph mode): the same formula, elementwise instead of outer.

    Returns
    -------
    D : Tensor (len(rows), len(cols)), or (len(rows),) when ``paired``, in the
        dtype of ``s_block``.
    """
    if paired:
        def R(t):
            return t

        C = R
    else:
        def R(t):
            return t.unsqueeze(1)

        def C(t):
            return t.unsqueeze(0)

    dtype = s_block.dtype
    n = stats.sizes.to(dtype)
    n_r, n_c = n[rows], n[cols]
    if out is None:
        out = torch.empty_like(s_block)

    # base(A, B) = s / denom_ab + (beta_a + beta_b), each term with a single
    # correctly rounded division, so that criterion values that are equal in
    # exact arithmetic are equal in floating point (ties then follow the
    # lowest (i, j) pair rule): energy 2 s/(n m) as s / (n (m/2)) (m/2 and the
    # factor 2 are exact), average s / (n m), within terms W / n^2.
    beta = None
    if linkage == "energy":
        beta = -stats.within.to(dtype) / (n * n)
    reg = _separable_reg(stats, regularizer) if not weighted else None
    if reg is not None and lam != 0.0:
        reg_part = (lam * reg).to(dtype)
        beta = reg_part if beta is None else beta + reg_part
    if penalty is not None:
        beta = penalty if beta is None else beta + penalty

    if linkage == "single":
        out.copy_(s_block)
    else:
        half = 0.5 if linkage == "energy" else 1.0
        # n m (or n m / 2) is symmetric in (a, b): so is the quotient
        torch.mul(R(n_r), C(n_c * half), out=out)
        torch.div(s_block, out, out=out)
    if beta is not None:
        if symmetric:
            out.add_(R(beta[rows]) + C(beta[cols]))
        else:
            # Eq. 6's order: (between - within_A) - within_B, A the row
            out.add_(R(beta[rows])).add_(C(beta[cols]))

    if weighted:
        # n m / (n + m) written as 1 / (1/n + 1/m): symmetric and overflow-free
        h = torch.reciprocal(1.0 / R(n_r) + 1.0 / C(n_c))
        out.mul_(h)
        reg = _separable_reg(stats, regularizer)
        if reg is not None and lam != 0.0:
            reg_part = (lam * reg).to(dtype)
            out.add_(R(reg_part[rows]) + C(reg_part[cols]))

    if regularizer == "ssd_merged" and lam != 0.0:
        mu = stats.means
        ssd = stats.ssd.to(dtype)
        mu_r, mu_c = mu[rows], mu[cols]
        if paired:
            cd = (mu_r - mu_c).square_().sum(1).to(dtype)
        else:
            cd = torch.addmm(
                (mu_c * mu_c).sum(1).unsqueeze(0), mu_r, mu_c.T, alpha=-2.0
            ).add_((mu_r * mu_r).sum(1).unsqueeze(1)).clamp_(min=0.0).to(dtype)
        cd.mul_(torch.reciprocal(1.0 / R(n_r) + 1.0 / C(n_c)))
        cd.add_(R(ssd[rows]) + C(ssd[cols]))
        out.add_(cd, alpha=lam)
    return out
