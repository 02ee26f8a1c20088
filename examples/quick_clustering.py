"""Quick start: E-cluster, BUC and DBC on L2-normalised features.

Clusters well-separated Gaussian groups on the unit sphere (the shape of
re-identification features) with the paper's method and its two baselines,
and prints the adjusted Rand index of each against the true groups.

Run: ``python examples/quick_clustering.py``
"""

from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import normalize

from sklearn_ecluster.cluster import EnergyAgglomerative, make_clusterer

X, y = make_blobs(n_samples=600, n_features=32, centers=12, cluster_std=2.0,
                  random_state=0)
X = normalize(X)  # lam = 0.9 is meant for unit-norm features

for method in ["ecluster", "buc", "dbc"]:
    model = make_clusterer(method, n_clusters=12, merge_percent=0.05)
    labels = model.fit_predict(X)
    print(f"{method:9s} ARI = {adjusted_rand_score(y, labels):.3f} "
          f"in {model.n_steps_} steps")

# The constant schedule merges int(0.05 * 600) = 30 pairs per step from stale
# distances, so the last steps (42 -> 12 clusters) can chain; finer steps as the
# clusters grow fix that.
geo = make_clusterer("ecluster", n_clusters=12, merge_schedule="geometric")
print(f"ecluster, geometric schedule: ARI = "
      f"{adjusted_rand_score(y, geo.fit_predict(X)):.3f} in {geo.n_steps_} steps")

# No n_clusters: the whole hierarchy is built and the best-silhouette cut kept.
auto = EnergyAgglomerative(weighted=True, merge_schedule="geometric").fit(X)
print(f"automatic cut: {auto.n_clusters_} clusters "
      f"(silhouette {auto.cut_score_:.3f}), "
      f"ARI = {adjusted_rand_score(y, auto.labels_):.3f}")
