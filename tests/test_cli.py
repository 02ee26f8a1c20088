"""The command line: the demo, the cluster subcommand, and clear errors."""

import json

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import normalize

from sklearn_ecluster.cli import format_table, main


def test_demo_prints_every_method(capsys):
    assert main(["demo", "--datasets", "iris", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for name in ["E-cluster (paper defaults)", "BUC criterion", "DBC criterion",
                 "scikit-learn Ward", "scikit-learn average"]:
        assert name in out
    # every row reports 3 clusters (n_clusters = number of iris classes)
    rows = [line for line in out.splitlines() if line.startswith(("E-cluster", "BUC",
                                                                   "DBC", "scikit"))]
    assert len(rows) == 7
    assert all(line.split()[-4] == "3" for line in rows)


def test_cluster_subcommand_writes_labels(tmp_path, capsys):
    X, y = make_blobs(120, n_features=8, centers=4, random_state=0)
    X = normalize(X)
    np.save(tmp_path / "X.npy", X)
    out = tmp_path / "labels.npy"
    code = main(["cluster", str(tmp_path / "X.npy"), "-o", str(out), "--method", "dbc",
                 "--n-clusters", "4", "--device", "cpu"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    labels = np.load(out)
    assert summary["n_clusters"] == 4 == len(np.unique(labels))
    assert adjusted_rand_score(y, labels) > 0.9


def test_cluster_subcommand_csv_and_text_output(tmp_path):
    X = normalize(make_blobs(40, n_features=3, centers=2, random_state=1)[0])
    np.savetxt(tmp_path / "X.csv", X, delimiter=",")
    out = tmp_path / "labels.txt"
    assert main(["cluster", str(tmp_path / "X.csv"), "-o", str(out), "--exact",
                 "--n-clusters", "2", "--device", "cpu"]) == 0
    assert np.loadtxt(out).shape == (40,)


@pytest.mark.parametrize("argv, message", [
    (["cluster", "missing.npy"], "does not exist"),
    (["cluster", "{X}", "--n-clusters", "0"], "n_clusters"),
    (["cluster", "{X}", "--merge-percent", "1.5"], "merge_percent"),
])
def test_cluster_subcommand_errors_exit_2(tmp_path, capsys, argv, message):
    np.save(tmp_path / "X.npy", np.random.default_rng(0).normal(size=(10, 2)))
    argv = [a.replace("{X}", str(tmp_path / "X.npy")) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_subcommand_exits_nonzero():
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code != 0


def test_format_table_aligns_columns():
    text = format_table([{"a": "x", "b": 1.0}, {"a": "long", "b": 0.25}], ["a", "b"])
    lines = text.splitlines()
    assert lines[0].split() == ["a", "b"]
    assert lines[2].endswith("1.000") and lines[3].endswith("0.250")
    assert len({len(line) for line in lines}) == 1
