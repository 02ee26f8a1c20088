"""Quick start: the standalone energy clustering, then E-cluster, BUC and DBC.

Clusters Gaussian groups on the unit sphere (the shape of re-identification
features). The standalone energy clustering (``make_clusterer("standalone")``:
weighted energy distance, exact, no regulariser) is the one to use on a data
set by itself, with or without a number of clusters; the paper's criterion and
its baselines are made for one step per round of the self-training loop, and
are shown here cut at the true number of groups, next to scikit-learn's Ward.

Run: ``python examples/quick_clustering.py``
"""

from sklearn.cluster import AgglomerativeClustering
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import normalize

from sklearn_ecluster.cluster import EnergyAgglomerative, make_clusterer

X, y = make_blobs(n_samples=600, n_features=32, centers=12, cluster_std=2.0,
                  random_state=0)
X = normalize(X)  # lam = 0.9 is meant for unit-norm features

# No stopping rule: the standalone hierarchy, cut where the silhouette is best.
auto = EnergyAgglomerative().fit(X)
print(f"automatic cut: {auto.n_clusters_} clusters "
      f"(silhouette {auto.cut_score_:.3f}), ARI = {adjusted_rand_score(y, auto.labels_):.3f}")

standalone = make_clusterer("standalone", n_clusters=12)
print(f"standalone  ARI = {adjusted_rand_score(y, standalone.fit_predict(X)):.3f} "
      f"({standalone.engine_})")
ward = AgglomerativeClustering(12).fit_predict(X)
print(f"sklearn Ward ARI = {adjusted_rand_score(y, ward):.3f}")

# The paper's criteria: m = int(0.05 * 600) = 30 merges per step from distances
# not refreshed within a step, as inside the self-training loop.
for method in ["ecluster", "buc", "dbc"]:
    model = make_clusterer(method, n_clusters=12, merge_percent=0.05)
    labels = model.fit_predict(X)
    print(f"{method:11s} ARI = {adjusted_rand_score(y, labels):.3f} "
          f"in {model.n_steps_} steps")
