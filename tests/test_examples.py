"""The three examples run end to end on tiny data, write their run directories, chain
through best_config.json, and answer a user's mistake with one `error:` line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_medmnist_npz

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FAST = ["--epochs", "1", "--batch-size", "16", "--device", "cpu", "--precision", "fp32", "--quiet"]
RUN_FILES = ["config.json", "history.csv", "metrics.json", "report.md", "best.pt"]


def run_example(name, *args, cwd=None):
    """Run examples/<name> in a subprocess and return the completed process."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    """A 45/18/18-image, 32x32, 9-class npz in the MedMNIST format."""
    return write_medmnist_npz(tmp_path_factory.mktemp("d") / "t.npz", sizes=(45, 18, 18), size=32)


def metrics_of(out):
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_baseline_writes_its_run_directory(npz, tmp_path):
    """01 trains, validates and writes every run file, the figures and a val metric."""
    out = tmp_path / "base"
    p = run_example("01_baseline.py", "--data-file", npz, "--out", out, *FAST)
    assert p.returncode == 0, p.stderr
    for name in RUN_FILES:
        assert (out / name).exists(), name
    assert set(metrics_of(out)) == {"val"}
    assert set(metrics_of(out)["val"]) == {"accuracy", "macro_auc", "loss"}
    assert {"loss_curve.png", "accuracy_curve.png", "confusion_val.png"} <= {
        p.name for p in (out / "figures").iterdir()
    }
    assert "macro AUC" in p.stdout


@pytest.mark.slow
def test_tuning_then_final_evaluation_chain(npz, tmp_path):
    """02 writes results.csv and best_config.json; 03 reads it and reports val and test."""
    tune = tmp_path / "tune"
    p = run_example("02_tuning.py", "--data-file", npz, "--out", tune, "--subset", "0.5", *FAST)
    assert p.returncode == 0, p.stderr
    assert len((tune / "results.csv").read_text().splitlines()) == 9  # header + 8 trials
    best = json.loads((tune / "best_config.json").read_text())
    assert best["optimizer"] in {"adam", "sgd"} and best["epochs"] == 10
    assert (tune / "figures" / "trials.png").exists() and (tune / "report.md").exists()

    final = tmp_path / "final"
    p = run_example(
        "03_final_evaluation.py",
        "--data-file",
        npz,
        "--config",
        tune / "best_config.json",
        "--out",
        final,
        *FAST,
    )
    assert p.returncode == 0, p.stderr
    assert set(metrics_of(final)) == {"val", "test"}
    assert json.loads((final / "config.json").read_text())["config"]["lr"] == best["lr"]
    assert "gap" in p.stdout


@pytest.mark.slow
def test_any_medmnist_file_with_other_class_count(tmp_path):
    """--data-file with a 4-class grayscale npz trains and evaluates on 4 classes."""
    npz = write_medmnist_npz(
        tmp_path / "g.npz", sizes=(24, 8, 8), size=32, num_classes=4, channels=1
    )
    out = tmp_path / "run"
    p = run_example("01_baseline.py", "--data-file", npz, "--out", out, *FAST)
    assert p.returncode == 0, p.stderr
    assert json.loads((out / "config.json").read_text())["num_classes"] == 4


@pytest.mark.parametrize(
    "args, words",
    [
        (["--data-file", "missing.npz"], "missing.npz"),
        (["--subset", "1.5"], "subset"),
        (["--lr", "-1"], "lr"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, npz, args, words):
    """A bad file or value prints `error: <sentence>` (no traceback) and exits with 2."""
    if "--data-file" not in args:
        args = ["--data-file", npz, *args]
    p = run_example("01_baseline.py", *args, "--out", tmp_path / "o", "--quiet", cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.startswith("error: ") and "Traceback" not in p.stderr
    assert words in p.stderr


def test_final_evaluation_without_tuning_says_what_to_run(tmp_path, npz):
    """03 with no best_config.json tells the user to run 02 first."""
    p = run_example("03_final_evaluation.py", "--data-file", npz, "--quiet", cwd=tmp_path)
    assert p.returncode == 2 and "02_tuning" in p.stderr
