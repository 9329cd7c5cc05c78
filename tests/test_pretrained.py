"""Tests for pathmnist.model.pretrained. Oracle: torchvision's own network with the same
weights. No weights can be downloaded in a test, so the "pretrained" weights are a RANDOMLY
INITIALISED torchvision model saved to a file: what is checked is that our network loads
them exactly as torchvision does (equal float64 logits), not any pretrained accuracy.
The imagenet path runs through torch.hub with its downloader made to fail, to fetch a
local file (its checksum fails), or skipped because the file is already in the cache."""

import re
import urllib.request
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torchvision
from conftest import run_in_process, write_medmnist_npz
from test_resnet import randomize_batchnorm, rel_err

from pathmnist.config import TrainConfig
from pathmnist.data.dataset import load_split
from pathmnist.errors import PathMNISTError
from pathmnist.model import pretrained
from pathmnist.model.registry import build
from pathmnist.training.fit import fit

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def random_torchvision(arch, seed=0, legacy=False):
    """A randomly initialised torchvision network (1000 classes, non-trivial BatchNorm)
    and its state dict; `legacy` renames DenseNet keys as torchvision's old files do."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)()
    randomize_batchnorm(model, seed)
    sd = model.state_dict()
    if legacy:  # "denselayer1.norm1.weight" -> "denselayer1.norm.1.weight"
        sd = {
            re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v
            for k, v in sd.items()
        }
        assert "features.denseblock1.denselayer1.norm.1.weight" in sd
    return model, sd


def same_logits(ours, ref):
    """Copy our head into torchvision's model and compare float64 eval-mode logits."""
    head = "classifier" if hasattr(ref, "classifier") else "fc"
    setattr(ref, head, torch.nn.Linear(ours.fc.in_features, ours.fc.out_features))
    getattr(ref, head).load_state_dict(ours.fc.state_dict())
    ours, ref = ours.double().eval(), ref.double().eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        return rel_err(ours(x), ref(x))


@pytest.mark.parametrize(
    ("arch", "legacy"),
    [
        ("resnet18", False),
        ("densenet121", True),  # torchvision's own DenseNet files use the old key names.
        pytest.param("densenet121", False, marks=pytest.mark.slow),
        pytest.param("resnet34", False, marks=pytest.mark.slow),
        pytest.param("resnet50", False, marks=pytest.mark.slow),
    ],
)
def test_weights_file_gives_torchvisions_logits(arch, legacy, tmp_path):
    """With the same (random) weights from a file, our network and torchvision's give the
    same float64 logits to 1e-10; the 9-class head is our own fresh one, seeded as usual."""
    ref, sd = random_torchvision(arch, legacy=legacy)
    torch.save(sd, tmp_path / "w.pth")
    torch.manual_seed(5)
    ours = build(arch, weights=tmp_path / "w.pth", num_classes=9)
    torch.manual_seed(5)
    fresh = build(arch, num_classes=9)
    assert torch.equal(ours.fc.weight, fresh.fc.weight)  # The head is not from the file.
    assert same_logits(ours, ref) <= 1e-10


def test_a_pathmnist_checkpoint_is_a_weights_file(tmp_path):
    """The "model" entry of a best.pt-style dict is used (fine-tune from an earlier run)."""
    ref, sd = random_torchvision("resnet18")
    torch.save({"model": sd, "epoch": 3}, tmp_path / "best.pt")
    assert same_logits(build("resnet18", weights=tmp_path / "best.pt"), ref) <= 1e-10


def test_imagenet_file_names_and_statistics_are_torchvisions():
    """The cache file names are the URLs' (golden: torchvision's published file names),
    and ImageNet's mean and std are those of every weight's preset transform."""
    names = {a: pretrained.cache_path(a).name for a in pretrained.IMAGENET_WEIGHTS}
    assert names == {
        "resnet18": "resnet18-f37072fd.pth",
        "resnet34": "resnet34-b627a593.pth",
        "resnet50": "resnet50-11ad3fa6.pth",
        "densenet121": "densenet121-a639ec97.pth",
    }
    for entry in pretrained.IMAGENET_WEIGHTS.values():
        preset = torchvision.models.get_weight(entry).transforms()
        assert tuple(preset.mean) == pretrained.IMAGENET_MEAN
        assert tuple(preset.std) == pretrained.IMAGENET_STD


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """torch.hub's folder in tmp_path, and a downloader that fails as without a network."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    def offline(url, dst, *args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "hub" / "checkpoints"


def test_imagenet_offline_says_where_to_put_the_file(hub):
    path = hub / "resnet18-f37072fd.pth"
    with pytest.raises(PathMNISTError, match="could not be downloaded") as e:
        build("resnet18", weights="imagenet")
    assert str(path) in str(e.value) and "download.pytorch.org" in str(e.value)
    assert str(e.value).count(". ") == 0  # One sentence.


def test_imagenet_file_in_the_cache_loads_offline(hub):
    """A file placed where the sentence says is used without the network."""
    ref, sd = random_torchvision("densenet121", legacy=True)
    hub.mkdir(parents=True)
    torch.save(sd, hub / "densenet121-a639ec97.pth")
    assert same_logits(build("densenet121", weights="imagenet"), ref) <= 1e-10


def test_a_broken_file_in_the_cache_is_one_sentence(hub):
    hub.mkdir(parents=True)
    (hub / "resnet18-f37072fd.pth").write_bytes(b"half a download")
    with pytest.raises(PathMNISTError, match="could not be read as a state dict") as e:
        build("resnet18", weights="imagenet")
    assert str(e.value).count(". ") == 0


def test_imagenet_is_downloaded_into_the_cache(hub, monkeypatch):
    """Online, torch.hub downloads the file to the cache path (here: a stand-in writer)."""
    ref, sd = random_torchvision("resnet18")
    monkeypatch.setattr(
        torch.hub, "download_url_to_file", lambda url, dst, *a, **k: torch.save(sd, dst)
    )
    assert same_logits(build("resnet18", weights="imagenet"), ref) <= 1e-10
    assert (hub / "resnet18-f37072fd.pth").is_file()


def test_a_download_with_the_wrong_checksum_is_refused(hub, monkeypatch, tmp_path):
    """torch.hub's real downloader, fed a local file, refuses it: its SHA-256 does not
    start with the prefix in torchvision's file name."""
    monkeypatch.undo()
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    _, sd = random_torchvision("resnet18")
    torch.save(sd, tmp_path / "other.pth")
    local = (tmp_path / "other.pth").as_uri()
    monkeypatch.setattr(torch.hub, "urlopen", lambda req, *a, **k: urllib.request.urlopen(local))
    with pytest.raises(PathMNISTError, match="failed torchvision's checksum"):
        build("resnet18", weights="imagenet")
    assert not (hub / "resnet18-f37072fd.pth").exists()


@pytest.mark.parametrize(
    ("make", "arch", "match"),
    [
        (lambda p: None, "resnet18", "there is no weights file"),
        (lambda p: p.write_bytes(b"not a checkpoint"), "resnet18", "not a PyTorch state dict"),
        (lambda p: torch.save([1, 2], p), "resnet18", "holds a list, not a state dict"),
        (
            lambda p: torch.save(random_torchvision("resnet18")[1], p),
            "densenet121",
            "holds resnet18 weights, which densenet121 does not have; pass --arch resnet18",
        ),
        (
            lambda p: torch.save(
                {**random_torchvision("resnet18")[1], "extra.w": torch.ones(1)}, p
            ),
            "resnet18",
            "keys such as 'extra.w'",
        ),
        (
            lambda p: torch.save(
                {k: v for k, v in random_torchvision("resnet18")[1].items() if "layer4" not in k}, p
            ),
            "resnet18",
            # 122 keys less fc's 2 and 20 BatchNorm counters; layer4 holds 25 of them.
            "lacks 25 of the 100 resnet18 backbone tensors",
        ),
        (
            lambda p: torch.save(build("resnet18", stem="small").state_dict(), p),
            "resnet18",
            r"'conv1.weight' the shape \(64, 3, 3, 3\) but resnet18 needs \(64, 3, 7, 7\)",
        ),
    ],
)
def test_bad_weights_files_are_one_sentence(make, arch, match, tmp_path):
    path = tmp_path / "w.pth"
    make(path)
    with pytest.raises(PathMNISTError, match=match) as e:
        build(arch, weights=path)
    assert str(e.value).count(". ") == 0


def test_freeze_backbone_trains_only_the_head():
    """Frozen: one optimizer step changes fc and no backbone parameter; unfrozen: all learn."""
    model = build("resnet18", num_classes=3)
    pretrained.freeze_backbone(model, True)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=0.1, weight_decay=1e-4)
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"fc.weight", "fc.bias"}
    pretrained.freeze_backbone(model, False)
    assert all(p.requires_grad for p in model.parameters())


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    path = write_medmnist_npz(tmp_path_factory.mktemp("d") / "t.npz", sizes=(20, 9, 9), size=32)
    return load_split("train", data_file=path), load_split("val", data_file=path)


def test_fit_with_weights_and_a_frozen_first_epoch(splits, tmp_path):
    """fit loads the file's backbone, normalises with ImageNet's statistics, and in a frozen
    first epoch changes the head and no backbone weight."""
    _, sd = random_torchvision("resnet18")
    torch.save(sd, tmp_path / "w.pth")
    config = TrainConfig(
        weights=str(tmp_path / "w.pth"), freeze_epochs=1, epochs=1, batch_size=8, device="cpu"
    )
    history = fit(config, *splits, tmp_path / "run", quiet=True)
    weights = history.model.state_dict()
    assert torch.equal(weights["layer1.0.conv1.weight"], sd["layer1.0.conv1.weight"])
    assert torch.equal(weights["bn1.weight"], sd["bn1.weight"])
    info = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert tuple(info["mean"]) == pretrained.IMAGENET_MEAN
    assert tuple(info["std"]) == pretrained.IMAGENET_STD


def test_freeze_epochs_without_weights_is_refused():
    with pytest.raises(PathMNISTError, match="freeze_epochs needs pretrained weights"):
        TrainConfig(freeze_epochs=2).validate()


def test_example_refuses_a_bad_weights_file_and_writes_nothing(tmp_path, capsys):
    data = write_medmnist_npz(tmp_path / "t.npz", sizes=(20, 9, 9), size=32)
    torch.save(random_torchvision("resnet18")[1], tmp_path / "r18.pth")
    args = ["--data-file", data, "--arch", "densenet121", "--weights", tmp_path / "r18.pth"]
    code, err = run_in_process(
        "01_baseline.py", [*args, "--out", tmp_path / "run", "--quiet"], capsys
    )
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_lesson4_pretrained_recipe_offline_is_refused_before_any_run(hub, tmp_path, capsys):
    """The `pretrained` recipe without torchvision's file: one sentence naming where the
    file goes, before any recipe trains or the study folder exists."""
    data = write_medmnist_npz(tmp_path / "t.npz", sizes=(20, 9, 9), size=32)
    args = ["--data-file", data, "--recipes", "baseline,pretrained", "--seeds", "1"]
    code, err = run_in_process("04_stain_shift.py", [*args, "--out", tmp_path / "run"], capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert str(hub / "resnet18-f37072fd.pth") in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_example_runs_with_a_weights_file(tmp_path, capsys):
    """examples/01_baseline.py --weights FILE --freeze-epochs 1 runs end to end."""
    data = write_medmnist_npz(tmp_path / "t.npz", sizes=(30, 10, 10), size=32)
    torch.save(random_torchvision("resnet18")[1], tmp_path / "r18.pth")
    args = ["--data-file", data, "--weights", tmp_path / "r18.pth", "--freeze-epochs", "1"]
    fast = ["--epochs", "2", "--batch-size", "16", "--device", "cpu", "--quiet"]
    code, err = run_in_process("01_baseline.py", [*args, *fast, "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    assert (tmp_path / "run" / "metrics.json").is_file()
