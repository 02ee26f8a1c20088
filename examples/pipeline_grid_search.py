"""EnergyAgglomerative inside a scikit-learn Pipeline and GridSearchCV.

A clusterer has no ``predict``, so the grid search scores ``fit_predict``
labels against known classes with a small custom scorer (adjusted Rand index).

Run: ``python examples/pipeline_grid_search.py``
"""

from sklearn.datasets import load_iris
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

from sklearn_ecluster.cluster import EnergyAgglomerative


def ari_scorer(estimator, X, y):
    """ARI of the clustering the pipeline finds on X."""
    return adjusted_rand_score(y, estimator.fit_predict(X))


X, y = load_iris(return_X_y=True)
pipe = make_pipeline(StandardScaler(), Normalizer(),
                     EnergyAgglomerative(n_clusters=3, device="cpu"))
grid = GridSearchCV(
    pipe,
    param_grid={
        "energyagglomerative__lam": [0.0, 0.3, 0.9],
        "energyagglomerative__weighted": [False, True],
    },
    scoring=ari_scorer,
    cv=KFold(3, shuffle=True, random_state=0),
)
grid.fit(X, y)
print("best parameters:", grid.best_params_)
print(f"best mean ARI over folds: {grid.best_score_:.3f}")
