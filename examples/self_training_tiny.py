"""The unsupervised re-ID loop on a tiny synthetic person dataset, on the CPU.

Draws a small Market-1501-layout dataset of synthetic pedestrians, then runs
SelfTrainingReID (paper Algorithm 1) with E-cluster: round 0 trains a small
network on singleton labels, every later round merges m more clusters of
the extracted features and fine-tunes on the new pseudo labels. The true
person ids are passed only for the pseudo-label diagnostics; the query and
gallery parts are used for evaluation.
"""

import tempfile

import torch
from torch import nn

from sklearn_ecluster import EnergyAgglomerative, ReIDFeatureExtractor, SelfTrainingReID
from sklearn_ecluster.datasets import load_market1501, make_synthetic_reid

# Any nn.Module mapping images to a feature map works as the backbone; a small
# ConvNet learns from scratch on a CPU (ResNet-50 at 256 x 128 wants a GPU).
torch.manual_seed(0)
backbone = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
)

with tempfile.TemporaryDirectory() as tmp:
    root = make_synthetic_reid(tmp, n_identities=16, images_per_identity=(4, 8),
                               image_size=(64, 32), camera_shift=0.3, random_state=0)
    data = load_market1501(root)
    print(f"{len(data.train.paths)} training images, {len(data.query.paths)} queries, "
          f"{len(data.gallery.paths)} gallery images")

    extractor = ReIDFeatureExtractor(backbone, image_size=(64, 32),
                                     embedding_dim=64, epochs=3, lr=0.1, lr_step=None,
                                     backbone_lr_mult=1.0, train_batch_size=16,
                                     device="cpu")
    loop = SelfTrainingReID(extractor, EnergyAgglomerative(lam=0.9, device="cpu"),
                            merge_percent=0.15, n_rounds=3, later_lr=0.05,
                            random_state=0)
    loop.fit(data.train.paths, data.train.pids, eval_set=data)

print("round  clusters  loss   rank-1  mAP    label precision")
for h in loop.history_:
    precision = "-" if h["label_precision"] is None else f"{h['label_precision']:.2f}"
    print(f"{h['round']:5d}  {h['n_clusters']:8d}  {h['loss']:.3f}  {100 * h['rank1']:5.1f}  "
          f"{100 * h['mAP']:5.1f}  {precision}")
print(f"kept round {loop.best_iteration_} (selection={loop.selection_!r}: the best mAP on "
      "the evaluation set, the paper's optimistic choice)")
