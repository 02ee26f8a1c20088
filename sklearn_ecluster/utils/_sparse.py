"""Row blocks of a CSR matrix: what the sparse distances are read by."""

import numpy as np


def csr_row_blocks(D, max_entries=1 << 22):
    """Blocks of whole rows of the CSR matrix ``D``, each about ``max_entries`` entries.

    Yields ``(r0, r1, rows, cols, values)``: the rows ``r0:r1`` (at least one,
    however long), the row of each stored entry (int64), its column and its
    value (views of ``D.indices`` and ``D.data``).

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from sklearn_ecluster.utils._sparse import csr_row_blocks
    >>> D = sp.csr_matrix([[0, 1.0, 2.0], [1.0, 0, 0], [2.0, 0, 0]])
    >>> [(r0, r1, rows.tolist()) for r0, r1, rows, _, _ in csr_row_blocks(D, 2)]
    [(0, 1, [0, 0]), (1, 3, [1, 2])]
    """
    n = D.shape[0]
    r0 = 0
    while r0 < n:
        r1 = int(np.searchsorted(D.indptr, D.indptr[r0] + max_entries, side="right")) - 1
        r1 = min(n, max(r1, r0 + 1))
        e0, e1 = D.indptr[r0], D.indptr[r1]
        rows = np.repeat(np.arange(r0, r1, dtype=np.int64), np.diff(D.indptr[r0:r1 + 1]))
        yield r0, r1, rows, D.indices[e0:e1], D.data[e0:e1]
        r0 = r1
