"""The examples' shared flags: defaults keep the seed's baseline, given flags override
it (every training flag reaches its TrainConfig field), argparse's own errors and bad
values are one PathMNISTError sentence, --out/--resume/--overwrite are checked before any
data is loaded, the data flags pick the right file, and run() turns user errors into
`error:` + exit 2."""

import dataclasses

import numpy as np
import pytest

from pathmnist import cli
from pathmnist.config import TrainConfig
from pathmnist.errors import PathMNISTError
from pathmnist.training import rundir


def parse(*argv):
    return cli.parser("test").parse_args(list(argv))


def test_no_flags_is_the_seed_baseline():
    """Without training flags the config is TrainConfig()'s defaults."""
    args = parse()
    assert args.dataset == "pathmnist" and args.size == 64
    assert not args.resume and not args.overwrite and args.out is None
    assert cli.config_from_args(args) == TrainConfig()


def test_given_flags_override_the_base():
    """Each given flag replaces its field; the others keep the base's values."""
    base = TrainConfig(lr=0.05, optimizer="sgd", augment=("color",))
    config = cli.config_from_args(
        parse("--epochs", "3", "--batch-size", "64", "--augment", "flips,hed-light",
              "--seed", "7", "--tta", "--loss", "focal", "--mixup", "0.2"),
        base,
    )  # fmt: skip
    assert (config.epochs, config.batch_size, config.seed) == (3, 64, 7)
    assert config.augment == ("flips", "hed-light") and config.tta and config.loss == "focal"
    assert (config.lr, config.optimizer, config.mixup) == (0.05, "sgd", 0.2)
    assert config.stain_normalize is False  # A store_true flag not given keeps the base.


# A command line and the field value it must give, for every CONFIG_FLAGS entry.
EVERY_FLAG = {
    "arch": (["--arch", "resnet34"], "resnet34"),
    "stem": (["--stem", "small"], "small"),
    "weights": (["--weights", "weights.pt"], "weights.pt"),
    "freeze_epochs": (["--freeze-epochs", "2"], 2),
    "randaugment_n": (["--randaugment-n", "3"], 3),
    "randaugment_m": (["--randaugment-m", "5"], 5),
    "epochs": (["--epochs", "4"], 4),
    "batch_size": (["--batch-size", "32"], 32),
    "lr": (["--lr", "0.3"], 0.3),
    "optimizer": (["--optimizer", "sgd"], "sgd"),
    "augment": (["--augment", "none"], ()),
    "stain_normalize": (["--stain-normalize"], True),
    "loss": (["--loss", "weighted"], "weighted"),
    "label_smoothing": (["--label-smoothing", "0.1"], 0.1),
    "focal_gamma": (["--focal-gamma", "1.5"], 1.5),
    "mixup": (["--mixup", "0.4"], 0.4),
    "cutmix": (["--cutmix", "1.0"], 1.0),
    "tta": (["--tta"], True),
    "device": (["--device", "cpu"], "cpu"),
    "precision": (["--precision", "bf16"], "bf16"),
    "compile": (["--compile"], True),
    "deterministic": (["--deterministic"], True),
    "seed": (["--seed", "11"], 11),
}


@pytest.mark.parametrize("field", cli.CONFIG_FLAGS)
def test_every_training_flag_reaches_its_field(field):
    """Each flag of CONFIG_FLAGS sets exactly its TrainConfig field."""
    argv, value = EVERY_FLAG[field]
    # Weights in the base, so that --freeze-epochs (which needs them) is allowed alone.
    base = TrainConfig(augment=("flips",), weights="base.pt")
    config = cli.config_from_args(parse(*argv), base)
    assert getattr(config, field) == value
    assert dataclasses.replace(config, **{field: getattr(base, field)}) == base


def test_config_flags_are_config_fields_and_all_tested():
    """CONFIG_FLAGS names real TrainConfig fields, each with a case above."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(cli.CONFIG_FLAGS) <= fields and set(cli.CONFIG_FLAGS) == set(EVERY_FLAG)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--lr", "-0.1"], "TrainConfig lr=-0.1 is not allowed"),
        (["--batch-size", "0"], "TrainConfig batch_size=0"),
        (["--augment", "flips,zoom"], "unknown augmentation 'zoom'"),
        (["--label-smoothing", "1"], "TrainConfig label_smoothing=1.0"),
    ],
)
def test_bad_values_are_user_errors(argv, words):
    """A value the config refuses raises one PathMNISTError sentence naming it."""
    with pytest.raises(PathMNISTError, match=words):
        cli.config_from_args(parse(*argv))


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--optimizer", "rmsprop"], "argument --optimizer: invalid choice: 'rmsprop'"),
        (["--epochs", "three"], "argument --epochs: invalid int value: 'three'"),
        (["--augment"], "argument --augment: expected one argument"),
        (["--size", "32"], "argument --size: invalid choice"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_argparse_errors_are_one_sentence(argv, words):
    """argparse's own complaints become a PathMNISTError (no usage block, no SystemExit),
    pointing at --help."""
    with pytest.raises(PathMNISTError, match=words) as info:
        parse(*argv)
    assert str(info.value).endswith("(see --help)") and "\n" not in str(info.value)


def test_run_flags_are_checked_before_the_data(tmp_path):
    """check_run_flags refuses --resume with --overwrite, --resume of nothing, a folder
    holding a run without a flag, and an --out that is a file; it returns the folder."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "history.csv").write_text("header\nan epoch\n")  # A started run.
    (tmp_path / "f.txt").write_text("x")
    out = tmp_path / "run"
    with pytest.raises(PathMNISTError, match="contradict"):
        cli.check_run_flags(parse("--resume", "--overwrite"), out)
    with pytest.raises(PathMNISTError, match="nothing to resume"):
        cli.check_run_flags(parse("--resume"), out)
    with pytest.raises(PathMNISTError, match="already holds a run"):
        cli.check_run_flags(parse(), out)
    with pytest.raises(PathMNISTError, match="is a file"):
        cli.check_run_flags(parse(), tmp_path / "f.txt")
    assert cli.check_run_flags(parse("--overwrite"), out) == out
    assert (out / "history.csv").exists()  # Checking removes nothing.
    with pytest.raises(PathMNISTError, match=r"holds a run of train, not of search"):
        cli.check_run_flags(parse("--resume"), out, resume_file="search.json")


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


def test_data_description_and_a_data_root_that_is_a_file(tiny_npz, tmp_path):
    """The data are described by the resolved file, or the dataset and size; a
    --data-root that is a file is refused."""
    assert cli.data_description(parse("--data-file", str(tiny_npz))) == str(tiny_npz.resolve())
    assert cli.data_description(parse("--dataset", "synthetic", "--size", "28")) == (
        "synthetic size 28"
    )
    (tmp_path / "root").write_text("x")
    with pytest.raises(PathMNISTError, match=r"--data-root .* is a file; give a folder"):
        cli.load_data(parse("--data-root", str(tmp_path / "root")))


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


def test_run_turns_user_errors_into_one_line(capsys, tmp_path):
    """run() prints `error: <sentence>` to stderr and exits with status 2; Ctrl-C exits
    with 130 and one line, saying how to resume once a run folder was started, and only
    then (before it, --resume would find nothing to resume)."""

    def main():
        raise PathMNISTError("the file x.npz is missing; pass --data-file with a real file.")

    with pytest.raises(SystemExit) as e:
        cli.run(main)
    assert e.value.code == 2
    assert capsys.readouterr().err == (
        "error: the file x.npz is missing; pass --data-file with a real file.\n"
    )

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as e:
        cli.run(interrupted)
    err = capsys.readouterr().err
    assert e.value.code == 130 and "--resume" not in err and "rerun the same command" in err
    assert len(err.strip().splitlines()) == 1

    def interrupted_mid_run():
        rundir.start(tmp_path / "run", resume=False, overwrite=False)
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as e:
        cli.run(interrupted_mid_run)
    err = capsys.readouterr().err
    assert e.value.code == 130 and "--resume" in err and len(err.strip().splitlines()) == 1
