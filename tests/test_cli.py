"""The examples' shared flags: defaults keep the seed's baseline, given flags override
it, the data flags pick the right file, and user errors become `error:` + exit 2."""

import numpy as np
import pytest

from pathmnist import cli
from pathmnist.errors import PathMNISTError
from pathmnist.training import TrainConfig


def parse(*argv):
    return cli.parser("test").parse_args(list(argv))


def test_no_flags_is_the_seed_baseline():
    """Without training flags the config is TrainConfig()'s defaults."""
    args = parse()
    assert args.dataset == "pathmnist" and args.size == 64
    assert cli.config_from_args(args) == TrainConfig()


def test_given_flags_override_the_base():
    """Each given flag replaces its field; the others keep the base's values."""
    base = TrainConfig(lr=0.05, optimizer="sgd")
    config = cli.config_from_args(
        parse("--epochs", "3", "--batch-size", "64", "--augment", "--seed", "7"), base
    )
    assert (config.epochs, config.batch_size, config.augment, config.seed) == (3, 64, True, 7)
    assert (config.lr, config.optimizer) == (0.05, "sgd")


def test_bad_value_is_a_user_error():
    """A value the config rejects (here a negative lr) raises PathMNISTError."""
    with pytest.raises(PathMNISTError):
        cli.config_from_args(parse("--lr", "-0.1"))


def test_bad_choice_exits_2():
    """argparse itself rejects an unknown choice with status 2."""
    with pytest.raises(SystemExit) as e:
        parse("--optimizer", "rmsprop")
    assert e.value.code == 2


def test_data_file_overrides_dataset_and_subset_is_stratified(tiny_npz):
    """--data-file wins over --dataset; --subset keeps a stratified fraction of train."""
    splits = cli.load_data(
        parse("--dataset", "synthetic", "--data-file", str(tiny_npz), "--subset", "0.5")
    )
    assert set(splits) == {"train", "val", "test"}
    full = cli.load_data(parse("--data-file", str(tiny_npz)), splits=("train",))["train"]
    expected = sum(max(1, round(c / 2 + 1e-9)) for c in np.bincount(full.labels))
    assert len(splits["train"]) == expected < len(full)
    assert len(splits["val"]) == 10


def test_synthetic_dataset_is_made_once_in_the_data_root(tmp_path, monkeypatch):
    """--dataset synthetic writes one cached npz into --data-root and reuses it."""
    calls = []
    real = cli.synthetic.ensure_synthetic
    monkeypatch.setattr(cli.synthetic, "DEFAULT_SIZES", (18, 9, 9))

    def counting(root, **kw):
        calls.append(root)
        return real(root, sizes=(18, 9, 9), **kw)

    monkeypatch.setattr(cli.synthetic, "ensure_synthetic", counting)
    args = parse("--dataset", "synthetic", "--data-root", str(tmp_path), "--size", "28")
    first = cli.load_data(args, splits=("val",))
    again = cli.load_data(args, splits=("val",))
    assert calls == [tmp_path, tmp_path] and len(list(tmp_path.glob("*.npz"))) == 1
    assert first["val"].images.shape[1:] == (28, 28, 3)
    assert (first["val"].images == again["val"].images).all()


def test_run_turns_user_errors_into_one_line(capsys):
    """run() prints `error: <sentence>` to stderr and exits with status 2."""

    def main():
        raise PathMNISTError("the file x.npz is missing; pass --data-file with a real file.")

    with pytest.raises(SystemExit) as e:
        cli.run(main)
    assert e.value.code == 2
    assert capsys.readouterr().err == (
        "error: the file x.npz is missing; pass --data-file with a real file.\n"
    )
