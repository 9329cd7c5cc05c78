"""The examples run end to end on tiny data, write their run directories, chain through
best_config.json, refuse to mix two runs in one --out (resume and overwrite work), and
answer a user's mistake with one `error:` line and exit status 2.

The end-to-end runs are `slow` and run each example as a script in a subprocess; the
user-error cases call the example's `main` in this process through `cli.run` (the code a
script runs, without another interpreter start each time), plus one real subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_in_process, write_medmnist_npz

from pathmnist.studies import ablation

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FAST = ["--epochs", "1", "--batch-size", "16", "--device", "cpu", "--precision", "fp32", "--quiet"]
RUN_FILES = ["config.json", "history.csv", "metrics.json", "report.md", "best.pt", "last.pt"]
SPLIT_KEYS = {"accuracy", "accuracy_ci95", "macro_auc", "macro_auc_ci95", "loss", "n"}


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
    """A 45/90/90-image, 32x32, 9-class npz in the MedMNIST format: 10 images per class
    in val and test, so the macro-AUC bootstrap finds every class in its resamples."""
    return write_medmnist_npz(tmp_path_factory.mktemp("d") / "t.npz", sizes=(45, 90, 90), size=32)


def metrics_of(out):
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_baseline_writes_its_run_directory_and_guards_it(npz, tmp_path):
    """01 trains, validates and writes every run file, the figures and the val metrics;
    the same command again is refused (the files unchanged), --resume of the finished run
    and --overwrite both succeed and leave the user's notes.txt."""
    out = tmp_path / "base"
    p = run_example("01_baseline.py", "--data-file", npz, "--out", out, *FAST)
    assert p.returncode == 0, p.stderr
    for name in RUN_FILES:
        assert (out / name).exists(), name
    assert set(metrics_of(out)) == {"val"} and set(metrics_of(out)["val"]) == SPLIT_KEYS
    assert {"loss_curve.png", "accuracy_curve.png", "confusion_val.png"} <= {
        p.name for p in (out / "figures").iterdir()
    }
    assert "macro AUC" in p.stdout

    (out / "notes.txt").write_text("mine")
    history = (out / "history.csv").read_bytes()
    again = run_example("01_baseline.py", "--data-file", npz, "--out", out, *FAST)
    assert again.returncode == 2
    assert "already holds a run of 01_baseline; pass --resume" in again.stderr
    assert (out / "history.csv").read_bytes() == history
    for flag in ("--resume", "--overwrite"):
        p = run_example("01_baseline.py", "--data-file", npz, "--out", out, flag, *FAST)
        assert p.returncode == 0, p.stderr
        assert (out / "notes.txt").read_text() == "mine"
        assert len((out / "history.csv").read_text().splitlines()) == 2  # Header + 1 epoch.


@pytest.mark.slow
def test_tuning_then_final_evaluation_chain(npz, tmp_path):
    """02 writes search.json, results.csv and best_config.json; 03 reads it, compares
    with lesson 1's best.pt on validation, carries one model and reports val and test; 05
    calibrates that model and draws its Grad-CAM maps into the same run folder."""
    base = tmp_path / "base"
    p = run_example("01_baseline.py", "--data-file", npz, "--out", base, *FAST)
    assert p.returncode == 0, p.stderr
    tune = tmp_path / "tune"
    p = run_example("02_tuning.py", "--data-file", npz, "--out", tune, "--subset", "0.5", *FAST)
    assert p.returncode == 0, p.stderr
    assert len((tune / "results.csv").read_text().splitlines()) == 9  # header + 8 trials
    assert (tune / "search.json").exists() and not list(tune.rglob("*.pt"))
    best = json.loads((tune / "best_config.json").read_text())
    assert best["optimizer"] in {"adam", "sgd"} and best["epochs"] == 10
    assert (tune / "figures" / "trials.png").exists() and (tune / "report.md").exists()

    final = tmp_path / "final"
    p = run_example("03_final_evaluation.py", "--data-file", npz, "--config",
                    tune / "best_config.json", "--baseline", base / "best.pt", "--out", final,
                    *FAST)  # fmt: skip
    assert p.returncode == 0, p.stderr
    m = metrics_of(final)
    assert {"val", "test", "carried", "val_tuned_vs_baseline"} <= set(m)
    assert set(m["test"]) == SPLIT_KEYS and m["carried"] in {"tuned", "baseline"}
    assert json.loads((final / "config.json").read_text())["config"]["lr"] == best["lr"]
    assert "a gap of" in p.stdout and "carried to the test split" in p.stdout

    # Lesson 5 on lesson 3's run: calibration and Grad-CAM of the carried model.
    p = run_example("05_inside_the_model.py", "--data-file", npz, "--run", final, "--quiet")
    assert p.returncode == 0, p.stderr
    m = metrics_of(final)
    assert {"temperature", "ece", "ece_after_temperature", "ece_change_ci95"} <= set(m)
    assert m["checkpoint"].endswith("best.pt") and "test" in m  # Lesson 3's entries stay.
    for png in ("reliability.png", "gradcam.png"):
        assert (final / "figures" / png).stat().st_size > 0


def test_stain_shift_study_writes_its_rows_report_and_grows_by_a_recipe(npz, tmp_path):
    """04 on a MedMNIST file ("real" shift): one results.csv row per recipe and seed, the
    figure and the report; a --resume naming one more recipe trains only that recipe."""
    out = tmp_path / "study"
    study = ["--data-file", npz, "--out", out, "--seeds", "2", *FAST]
    p = run_example("04_stain_shift.py", *study, "--recipes", "baseline,flips")
    assert p.returncode == 0, p.stderr
    rows = ablation.read_rows(out / "results.csv")
    assert [(r["recipe"], r["seed"], r["shift"]) for r in rows] == [
        (n, s, "real") for n in ("baseline", "flips") for s in (0, 1)
    ]
    assert (out / "figures" / "ablation.png").exists() and "flips" in p.stdout
    assert "Lesson 4" in (out / "report.md").read_text()
    before = (out / "results.csv").read_text()
    p = run_example(
        "04_stain_shift.py", *study, "--recipes", "baseline,flips,flips+randaugment", "--resume"
    )
    assert p.returncode == 0, p.stderr
    assert (out / "results.csv").read_text().startswith(before)
    grown = ablation.read_rows(out / "results.csv")
    assert [r["recipe"] for r in grown[len(rows) :]] == ["flips+randaugment"] * 2
    assert not list(out.rglob("*.pt"))  # Each training's checkpoints go once its rows exist.


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


def test_a_user_error_in_the_script_is_one_line_and_status_2(tmp_path):
    """Run as a script, a missing data file prints `error: <sentence>` (no traceback)
    and exits with 2."""
    p = run_example("01_baseline.py", "--data-file", "missing.npz", "--out", "o", "--quiet",
                    cwd=tmp_path)  # fmt: skip
    assert p.returncode == 2
    assert p.stderr.startswith("error: ") and "Traceback" not in p.stderr
    assert "missing.npz" in p.stderr and len(p.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--subset", "1.5"], "subset fraction=1.5"),
        (["--lr", "-1"], "TrainConfig lr=-1.0"),
        (["--augment", "zoom"], "unknown augmentation 'zoom'"),
        (["--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
        (["--resume", "--overwrite"], "contradict"),
        (["--resume"], "nothing to resume"),
        (["--out", "afile.txt"], "is a file"),
        (["--out", "held"], "already holds a run"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, npz, capsys, monkeypatch, args, words):
    """A bad value, flag or --out prints `error: <sentence>` and exits with 2, before
    any training and without touching an existing run."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile.txt").write_text("x")
    (tmp_path / "held").mkdir()
    (tmp_path / "held" / "history.csv").write_text("x")
    if "--out" not in args:
        args = [*args, "--out", "o"]
    code, err = run_in_process("01_baseline.py", ["--data-file", npz, *args, "--quiet"], capsys)
    assert code == 2, err
    assert err.startswith("error: ") and words in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "held" / "history.csv").read_text() == "x"
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_final_evaluation_without_tuning_says_what_to_run(tmp_path, npz, capsys, monkeypatch):
    """03 with no best_config.json tells the user to run 02 first."""
    monkeypatch.chdir(tmp_path)
    code, err = run_in_process("03_final_evaluation.py", ["--data-file", npz, "--quiet"], capsys)
    assert code == 2 and "02_tuning" in err


def test_tuning_resume_of_nothing_is_refused(tmp_path, npz, capsys, monkeypatch):
    """02 --resume into a folder without search.json says there is nothing to resume."""
    monkeypatch.chdir(tmp_path)
    code, err = run_in_process(
        "02_tuning.py", ["--data-file", npz, "--out", "t", "--resume", "--quiet"], capsys
    )
    assert code == 2 and "no search.json" in err
