"""A true dendrogram: the exact mode and scipy's dendrogram.

With ``merge_percent=None`` the criterion is refreshed after every merge, and
the full tree converts to scipy's linkage matrix. Writes ``dendrogram.png``
(needs matplotlib: ``pip install sklearn-ecluster[plots]``).

Run: ``python examples/plot_dendrogram.py [output.png]``
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from scipy.cluster.hierarchy import dendrogram  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.preprocessing import StandardScaler, normalize  # noqa: E402

from sklearn_ecluster.cluster import make_clusterer  # noqa: E402

X, y = load_iris(return_X_y=True)
X = normalize(StandardScaler().fit_transform(X))
# the standalone energy clustering: weighted, no regulariser, exact mode
model = make_clusterer("standalone").fit(X)
Z = model.get_linkage_matrix()

fig, ax = plt.subplots(figsize=(8, 4))
dendrogram(Z, truncate_mode="level", p=5, ax=ax, no_labels=True)
ax.set_title("Weighted energy clustering of iris (exact mode)")
ax.set_ylabel("n m / (n + m) * energy distance")
out = sys.argv[1] if len(sys.argv) > 1 else "dendrogram.png"
fig.savefig(out, dpi=80, bbox_inches="tight")
print(f"{model.n_leaves_ - 1} merges; automatic cut: {model.n_clusters_} clusters; "
      f"wrote {out}")
