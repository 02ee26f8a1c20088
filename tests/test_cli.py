"""The command line: every subcommand on tiny data, and clear errors."""

import csv
import json
import statistics
import sys

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import normalize

from sklearn_ecluster.cli import format_table, main


def test_cluster_demo_prints_every_method(capsys):
    assert main(["cluster-demo", "--datasets", "iris", "--device", "cpu"]) == 0
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


# ------------------------------------------------------------ re-ID commands
TINY = ["--backbone", "resnet18", "--image-size", "32", "16", "--embedding-dim", "16",
        "--device", "cpu", "--eval-batch-size", "32"]


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from sklearn_ecluster.datasets import make_synthetic_reid

    return make_synthetic_reid(tmp_path_factory.mktemp("data"), n_identities=8,
                               images_per_identity=(4, 6), image_size=(32, 16),
                               random_state=0)


def test_train_writes_history_labels_and_weights(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", str(tiny_dataset), "--method", "dbc", "--epochs", "1",
                 "--rounds", "2", "--merge-percent", "0.2", "--batch-size", "8",
                 "--montage", "2", "--output-dir", str(out), *TINY])
    assert code == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "mAP" in text and "selected round" in text
    # --montage 2: one montage of the round's pseudo labels per round
    assert "montage_round_*.png" in text
    assert sorted(p.name for p in out.glob("montage_*")) == [
        "montage_round_00.png", "montage_round_01.png"]
    assert all(p.stat().st_size > 0 for p in out.glob("montage_*"))
    history = json.loads((out / "history.json").read_text())
    assert [h["round"] for h in history] == [0, 1]
    assert history[1]["n_clusters"] < history[0]["n_clusters"]
    assert {"rank1", "mAP", "mINP", "label_precision"} <= set(history[1])
    assert (out / "history.csv").read_text().startswith("round,n_clusters")
    assert (out / "history.png").stat().st_size > 0
    labels = np.load(out / "labels.npy")
    assert labels.shape == (len(list((tiny_dataset / "bounding_box_train").glob("*.jpg"))),)
    # the weights load into a fresh extractor that then gives the same features
    from sklearn_ecluster import ReIDFeatureExtractor

    ext = ReIDFeatureExtractor("resnet18", image_size=(32, 16), embedding_dim=16,
                               device="cpu", weights=str(out / "weights.pt")).fit(
        [next((tiny_dataset / "query").glob("*.jpg"))])
    assert ext.transform([next((tiny_dataset / "query").glob("*.jpg"))]).shape == (1, 512)


def test_train_montage_without_matplotlib_exits_2(tiny_dataset, tmp_path, capsys,
                                                  monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    code = main(["train", str(tiny_dataset), "--montage", "2",
                 "--output-dir", str(tmp_path / "run"), *TINY])
    assert code == 2
    err = capsys.readouterr().err
    assert "--montage needs matplotlib" in err and "sklearn-ecluster[plots]" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "history.json").exists()  # nothing trained


def test_extract_then_evaluate_and_cluster(tiny_dataset, tmp_path, capsys):
    feats = tmp_path / "f.npz"
    assert main(["extract", str(tiny_dataset), "-o", str(feats), *TINY]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["features"]) == {"train", "query", "gallery"}
    report = tmp_path / "r.json"
    assert main(["evaluate", str(feats), "--json", str(report), "--device", "cpu"]) == 0
    with np.load(feats) as data:
        from sklearn_ecluster.metrics import evaluate_features

        expected = evaluate_features(data["query_features"], data["gallery_features"],
                                     data["query_pids"], data["gallery_pids"],
                                     data["query_camids"], data["gallery_camids"],
                                     max_rank=10, device="cpu")
        n_train = len(data["train_features"])
    assert json.loads(report.read_text())["mAP"] == pytest.approx(expected["mAP"])
    labels = tmp_path / "labels.npy"
    assert main(["cluster", str(feats), "-o", str(labels), "--method", "dbc",
                 "--n-clusters", "4", "--device", "cpu"]) == 0
    assert np.load(labels).shape == (n_train,)


@pytest.mark.parametrize("argv, message", [
    (["train", "{missing}"], "does not exist"),
    (["evaluate", "{npy}"], "lacks"),
    (["cluster", "{npy}", "--key", "nope"], "no array"),
])
def test_reid_commands_report_bad_data(tmp_path, capsys, argv, message):
    np.savez(tmp_path / "x.npz", train_features=np.zeros((3, 2)))
    argv = [a.replace("{missing}", str(tmp_path / "nowhere"))
             .replace("{npy}", str(tmp_path / "x.npz")) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_flag_values_exit_nonzero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--merge-percent", "2"])
    assert exc.value.code == 2
    assert "must be in (0, 1)" in capsys.readouterr().err


def _pm(values):
    """'mean ± std' in % as the demo prints it, computed with the statistics module."""
    return f"{100 * statistics.fmean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


@pytest.mark.slow
def test_demo_reports_mean_and_spread_over_seeds(tmp_path, capsys):
    # 3 rounds so that the criteria can differ (rounds 0 and 1 are the same for all)
    assert main(["demo", "--identities", "10", "--rounds", "3", "--epochs", "1",
                 "--merge-percent", "0.2", "--device", "cpu",
                 "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "history.json").read_text())
    methods, seeds = ["E-cluster", "BUC", "DBC"], [0, 1, 2]  # the defaults
    assert data["seeds"] == seeds and list(data["runs"]) == methods
    runs = {m: [data["runs"][m][str(s)] for s in seeds] for m in methods}
    for m in methods:
        for s in seeds:
            assert f"{m}, seed {s} (" in out
        assert all([h["round"] for h in hist] == [0, 1, 2] for hist in runs[m])
    # the same round 0 for every method with a given seed: same network, data, seed
    for k in range(3):
        assert len({runs[m][k][0]["mAP"] for m in methods}) == 1
    # the seeds differ (else the spread would be meaningless)
    assert len({hist[0]["mAP"] for hist in runs["E-cluster"]}) > 1

    # mean and sample std per round, recomputed from the per-seed histories
    keys = {"rank1": "rank-1", "mAP": "mAP", "label_precision": "label P",
            "label_recall": "label R"}
    stats = {}
    for m in methods:
        for r in range(3):
            for key in keys:
                values = [hist[r][key] for hist in runs[m]]
                if any(v is None for v in values):  # precision of singletons
                    assert data["summary"][m][r][key] is None
                    continue
                got = data["summary"][m][r][key]
                mean, std = statistics.fmean(values), statistics.stdev(values)
                stats[m, r, key] = mean, std
                assert got["mean"] == pytest.approx(mean, rel=1e-12, abs=1e-15)
                assert got["std"] == pytest.approx(std, rel=1e-12, abs=1e-15)
                assert (got["min"], got["max"]) == (min(values), max(values))
        # the printed per-method table: one row per round, 'mean ± std' per score
        table = out.split(f"{m}, mean ± std over the seeds")[1].split("\n\n")[0]
        rows = [line for line in table.splitlines() if line[:1].isdigit()]
        assert len(rows) == 3
        assert _pm([hist[2]["mAP"] for hist in runs[m]]) in rows[2]
        assert _pm([hist[2]["label_recall"] for hist in runs[m]]) in rows[2]

    # the summary: the rule is stated, and each pair's verdict follows from it
    assert "|mean A - mean B| > std A + std B" in out and "ddof=1" in out
    verdicts = {(d["key"], d["a"], d["b"]): d["exceeds"]
                for d in data["differences_last_round"]}
    assert len(verdicts) == 4 * 3
    for (key, a, b), exceeds in verdicts.items():
        (mean_a, std_a), (mean_b, std_b) = stats[a, 2, key], stats[b, 2, key]
        assert exceeds == (abs(mean_a - mean_b) > std_a + std_b)
        line = next(line for line in out.splitlines()
                    if line.startswith(keys[key]) and f" {a} - {b} " in line)
        assert line.split()[-1] == ("yes" if exceeds else "no")
        assert f"{100 * (mean_a - mean_b):+.1f}" in line
    assert ("differences larger than the spread:" in out) == any(verdicts.values())
    assert "whole demo:" in out and "3 methods x 3 seeds" in out

    # the files: per-seed rows, the spread per round, a plot with the bands
    with open(tmp_path / "summary.csv") as fh:
        summary = list(csv.DictReader(fh))
    assert len(summary) == 3 * 3
    row = next(r for r in summary if r["method"] == "DBC" and r["round"] == "2")
    assert float(row["mAP_mean"]) == pytest.approx(stats["DBC", 2, "mAP"][0], rel=1e-12)
    assert float(row["mAP_std"]) == pytest.approx(stats["DBC", 2, "mAP"][1], rel=1e-12)
    with open(tmp_path / "history.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 3 * 3 * 3
    assert (tmp_path / "history.png").stat().st_size > 0


@pytest.mark.parametrize("seeds", [["1"], ["1", "1"]])
def test_demo_needs_two_different_seeds(seeds, capsys):
    assert main(["demo", "--seeds", *seeds, "--device", "cpu"]) == 2
    assert "at least two different seeds" in capsys.readouterr().err


def test_demo_seed_flag_rejects_negative_seeds(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--seeds", "0", "-1"])
    assert exc.value.code == 2
    assert "--seeds" in capsys.readouterr().err
