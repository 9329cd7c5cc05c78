"""The reference for every speed ratio in benchmarks/: the seed project's pipeline, rebuilt.

The seed (a notebook; /work/shared/seed) trained the usual way of a MedMNIST tutorial,
and this module writes that way out with the libraries it used, so that `run.py` can time
it side by side with ours on the same data and machine:

* a medmnist-style Dataset: `__getitem__` turns one uint8 (H, W, 3) image into a
  `PIL.Image` and applies torchvision's `ToTensor()` + `Normalize(mean, std)`, returning
  the label as MedMNIST does, an int array of shape (1,) (medmnist.dataset.MedMNIST2D);
* `torch.utils.data.DataLoader(batch_size, shuffle=True, num_workers=0)`;
* torchvision's `resnet18(num_classes=9)`, float32, NCHW;
* `nn.CrossEntropyLoss`, `Adam(lr=1e-3, weight_decay=1e-4)`, `StepLR(5, 0.1)`;
* a training loop that reads `loss.item()` and the correct count every batch;
* a validation pass that moves each batch's softmax probabilities to the host with `.cpu()`
  and scores them with sklearn's `roc_auc_score(multi_class="ovr")`;
* `torch.save(model.state_dict())` after every epoch.

It is the reference, not a strawman: no deliberate slowdowns, and its inputs equal ours
(tests/test_benchmarks.py checks ToTensor + Normalize against our eval transform).
"""

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.models import resnet18

BATCH_SIZE = 128  # The seed's baseline.
HALF = (0.5, 0.5, 0.5)  # MedMNIST's getting-started normalisation, when no stats are given.


class SeedDataset(Dataset):
    """One split, item by item, as medmnist.dataset.MedMNIST2D serves it."""

    def __init__(self, images, labels, mean=HALF, std=HALF):
        self.imgs = images  # (N, H, W, 3) uint8
        self.labels = np.asarray(labels).reshape(-1, 1)  # (N, 1), MedMNIST's label column
        self.transform = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize(list(mean), list(std))]
        )

    def __len__(self):
        return len(self.imgs)

    def __getitem__(self, index):
        img, target = self.imgs[index], self.labels[index].astype(int)
        return self.transform(Image.fromarray(img)), target  # (3, H, W) float32, (1,)


def seed_loader(images, labels, mean=HALF, std=HALF, shuffle=True, batch_size=BATCH_SIZE):
    """The seed's DataLoader: one process (num_workers=0), default collation."""
    return DataLoader(
        SeedDataset(images, labels, mean, std),
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=0,
    )


def seed_model(device, num_classes=9, seed=0):
    """torchvision's ResNet-18 from scratch, with its loss, optimizer and scheduler."""
    torch.manual_seed(seed)
    model = resnet18(num_classes=num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.1)
    return model, nn.CrossEntropyLoss(), optimizer, scheduler


def seed_step(model, criterion, optimizer, x, y):
    """One training step as the seed wrote it; returns (loss sum, correct) as Python
    numbers, which is a host synchronisation per batch on a GPU."""
    optimizer.zero_grad()
    outputs = model(x)  # (B, 9)
    loss = criterion(outputs, y)
    loss.backward()
    optimizer.step()
    return loss.item() * x.size(0), (outputs.argmax(1) == y).sum().item()


def seed_train(model, criterion, optimizer, loader, device):
    """One training epoch over a DataLoader; returns (mean loss, accuracy)."""
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.squeeze(1).long().to(device)  # (B, 3, H, W), (B,)
        batch_loss, batch_correct = seed_step(model, criterion, optimizer, x, y)
        loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, seen + len(y)
    return loss_sum / seen, correct / seen


def seed_validate(model, criterion, loader, device):
    """The seed's validation pass: softmax probabilities to the host batch by batch, then
    accuracy and sklearn's one-vs-rest macro AUC; returns (loss, accuracy, macro AUC)."""
    model.eval()
    probs, labels, loss_sum = [], [], 0.0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.squeeze(1).long().to(device)
            outputs = model(x)
            loss_sum += criterion(outputs, y).item() * x.size(0)
            probs.append(outputs.softmax(dim=1).cpu())  # (B, 9), one copy per batch
            labels.append(y.cpu())
    p, y = torch.cat(probs).numpy(), torch.cat(labels).numpy()
    acc = float((p.argmax(1) == y).mean())
    return loss_sum / len(y), acc, float(roc_auc_score(y, p, multi_class="ovr"))


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def seed_epoch(
    train_images,
    train_labels,
    val_images,
    val_labels,
    device,
    out_dir,
    epochs=1,
    mean=HALF,
    std=HALF,
    batch_size=BATCH_SIZE,
    seed=0,
    stable=None,
):
    """Time up to `epochs` epochs of the seed's recipe from scratch, setup included:
    datasets, loaders, model, then per epoch train + validation + scheduler step +
    torch.save of the state_dict into `out_dir`. With `stable` (a relative tolerance, e.g.
    0.05) it stops early, after at least 2 epochs, once an epoch's seconds are within
    `stable` of the one before: a stable per-epoch figure without running all of them.
    Returns a dict with "seconds" (all of it), "epochs" (how many ran), "epoch_seconds"
    (each epoch's) and the last epoch's numbers."""
    device = torch.device(device)
    num_classes = int(max(np.max(train_labels), np.max(val_labels))) + 1
    _sync(device)
    start = time.perf_counter()
    torch.manual_seed(seed)  # The DataLoader's shuffle draws from torch's global generator.
    train_loader = seed_loader(train_images, train_labels, mean, std, True, batch_size)
    val_loader = seed_loader(val_images, val_labels, mean, std, False, batch_size)
    model, criterion, optimizer, scheduler = seed_model(device, num_classes, seed)
    epoch_seconds = []
    for _ in range(epochs):
        _sync(device)
        begin = time.perf_counter()
        train_loss, train_acc = seed_train(model, criterion, optimizer, train_loader, device)
        val_loss, val_acc, val_auc = seed_validate(model, criterion, val_loader, device)
        scheduler.step()
        torch.save(model.state_dict(), Path(out_dir) / "seed_model.pt")
        _sync(device)
        epoch_seconds.append(time.perf_counter() - begin)
        print(f"seed-style epoch {len(epoch_seconds)}: {epoch_seconds[-1]:.2f} s", flush=True)
        if stable and len(epoch_seconds) >= 2:
            if abs(epoch_seconds[-1] - epoch_seconds[-2]) <= stable * epoch_seconds[-2]:
                break
    return {
        "seconds": time.perf_counter() - start,
        "epochs": len(epoch_seconds),
        "epoch_seconds": epoch_seconds,
        "train_loss": train_loss,
        "train_acc": train_acc,
        "val_loss": val_loss,
        "val_acc": val_acc,
        "val_auc": val_auc,
    }
