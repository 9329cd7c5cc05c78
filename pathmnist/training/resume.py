"""The resume protocol: what each epoch saves, and the checks a resume must pass.

last.pt holds what a resume needs (model, optimizer, scheduler, early-stopping counters,
RNG states, the rows so far); the best epoch's weights live only in best.pt, which a resume
reads back, so each epoch writes the weights once more at most, not twice. A resume must
continue the same experiment: the same config (but `config.RESUME_MAY_CHANGE`) and the
same data.

Tested in tests/test_resume.py and tests/test_fit.py (resume refusals, a kill between
the two writes repaired, resume bit-identical to an uninterrupted run, the optimizer state
in its parameters' layout after a resume with another precision).
"""

import contextlib
import copy
import json
from pathlib import Path

import torch

from pathmnist.config import RESUME_MAY_CHANGE, TrainConfig
from pathmnist.errors import PathMNISTError
from pathmnist.training import checkpoints, rundir
from pathmnist.training.history import History

# What a resume reads from last.pt; a file without one of these is not a last.pt.
RESUME_KEYS = ("model", "optimizer", "scheduler", "early_stopping", "rng", "rows", "epoch")


# What last.pt holds beyond a best.pt (run info, model, epoch).
LAST_ONLY = ("optimizer", "scheduler", "early_stopping", "rng", "rows", "stopped_early", "sha256")


def load_last(out_dir, config: dict, data: dict) -> dict:
    """Return last.pt of `out_dir` after checking that resuming it continues the same
    experiment: the same config (but RESUME_MAY_CHANGE) and the same data."""
    out_dir = Path(out_dir)
    fix = "drop --resume and pass --overwrite to start anew"
    saved = checkpoints.load(out_dir / "last.pt", fix)
    missing = [k for k in (*RESUME_KEYS, "config", "data") if k not in saved]
    if missing:
        raise PathMNISTError(
            f"{out_dir / 'last.pt'} lacks {', '.join(missing)}, so it is not a last.pt "
            f"(a best.pt copied over it?); {fix}."
        )
    old_config = TrainConfig.from_dict(saved["config"]).to_dict()
    for key, value in config.items():
        if key not in RESUME_MAY_CHANGE and old_config.get(key) != value:
            raise PathMNISTError(
                f"cannot resume {out_dir}: its run used {key}={old_config.get(key)!r} but this "
                f"one asks for {key}={value!r}; use the same {key}, or train in a new folder."
            )
    if saved["data"] != data:
        raise PathMNISTError(
            f"cannot resume {out_dir}: it was trained on other data (another file, subset or "
            "seed); resume with the same data, or train in a new folder."
        )
    done = len(saved["rows"])
    if config["epochs"] < done:
        raise PathMNISTError(
            f"cannot resume {out_dir} with epochs={config['epochs']}: it has already trained "
            f"{done} epochs; pass --epochs {done} or more."
        )
    check_identity(out_dir, saved)
    return saved


def check_identity(out_dir, saved: dict) -> None:
    """Refuse a resume whose last.pt, best.pt or config.json belongs to another run (a file
    copied in from elsewhere): each carries its run's id, which must be the folder's."""
    out_dir, expected = Path(out_dir), rundir.run_id(out_dir)
    found = {"last.pt": saved.get("run")}
    if (out_dir / "best.pt").is_file():
        found["best.pt"] = checkpoints.load(out_dir / "best.pt", "train in a new folder").get("run")
    with contextlib.suppress(OSError, ValueError, AttributeError):
        found["config.json"] = json.loads((out_dir / "config.json").read_text()).get("run")
    expected = expected or found["last.pt"]  # A folder marked before ids: last.pt's own.
    for name, run in found.items():
        if run is not None and expected is not None and run != expected:
            raise PathMNISTError(
                f"{out_dir / name} belongs to another run than {out_dir} (copied from "
                "elsewhere?); put back this run's own file, or train in a new folder."
            )


def save_epoch(out_dir, info: dict, model, optimizer, scheduler, stopper, rows, stopped) -> None:
    """After an epoch: last.pt, then best.pt if it was the best so far, then history.csv.

    last.pt goes first: it is what a resume trusts. A kill between the two writes leaves
    best.pt one best epoch behind, which `restore` repairs from last.pt's own weights; the
    other order would leave best.pt ahead of last.pt, and the weights of last.pt's best
    epoch lost."""
    out_dir = Path(out_dir)
    epoch = rows[-1]["epoch"]
    # The best weights are best.pt's model (`restore` reads them from there): take the
    # stopper's state without them, rather than cloning them only to drop them.
    best_weights, stopper.best_weights = stopper.best_weights, None
    try:
        early = stopper.state_dict()
    finally:
        stopper.best_weights = best_weights
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),  # Adam's moments (or SGD's momentum buffers).
        "scheduler": scheduler.state_dict(),
        "early_stopping": early,
        "rng": checkpoints.rng_state(),
        "rows": rows,
        "stopped_early": stopped,
        "epoch": epoch,
    }
    state = checkpoints.to_host(state)  # Each tensor to the host once, for both files.
    checkpoints.save({**info, **state}, out_dir / "last.pt")
    if stopper.best_epoch == epoch:  # Model, config and normalisation: load_checkpoint's needs.
        best = {**info, "model": state["model"], "epoch": epoch}
        checkpoints.save(best, out_dir / "best.pt")
    History(rows).to_csv(out_dir / "history.csv")


def _best_weights(out_dir: Path, saved: dict, best_epoch: int) -> dict:
    """The best epoch's weights for a resume, from best.pt; or from last.pt when its own
    epoch is the best one and a kill between the two writes left best.pt behind (or
    absent), in which case best.pt is written again."""
    path, fix = out_dir / "best.pt", "train in a new folder (best.pt is gone)"
    own = best_epoch == saved["epoch"]
    best = checkpoints.load(path, fix) if path.exists() or not own else {"epoch": 0}
    if own and isinstance(best.get("epoch"), int) and best["epoch"] < best_epoch:
        info = {k: v for k, v in saved.items() if k not in LAST_ONLY}
        checkpoints.save({**info, "model": saved["model"], "epoch": best_epoch}, path)
        return saved["model"]
    if best.get("epoch") != best_epoch:
        raise PathMNISTError(
            f"{path} is from epoch {best.get('epoch')}, not the best epoch {best_epoch} that "
            "last.pt records; train in a new folder."
        )
    return best["model"]


def _match_parameter_layout(optimizer) -> None:
    """Give every state tensor shaped like its parameter (Adam's exp_avg, exp_avg_sq; SGD's
    momentum_buffer) the parameter's strides. The model is channels_last in bf16 and NCHW
    in fp32 (`device.memory_format`), and a resume may change the precision: the saved
    state keeps the old layout (e.g. exp_avg (27, 1, 9, 3) beside a weight (27, 9, 3, 1)),
    which CUDA's fused optimizers refuse. `empty_like` keeps the parameter's strides."""
    for p, state in optimizer.state.items():
        for key, value in state.items():
            if (
                isinstance(value, torch.Tensor)
                and value.shape == p.shape
                and value.stride() != p.stride()
            ):
                state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def restore(out_dir, saved: dict, model, optimizer, scheduler, stopper, best: bool = True):
    """Load last.pt's states (and best.pt's weights) into fresh objects; return its
    (rows, stopped_early). `best=False` (the ranks but 0 of a data-parallel run, which never
    return the model) leaves best.pt unread."""
    try:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        _match_parameter_layout(optimizer)
        scheduler.load_state_dict(saved["scheduler"])
        stopper.load_state_dict(saved["early_stopping"])
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise PathMNISTError(
            f"{Path(out_dir) / 'last.pt'} does not fit this model and optimizer "
            f"({type(e).__name__}); train in a new folder."
        ) from None
    if stopper.best_epoch and best:
        best = _best_weights(Path(out_dir), saved, stopper.best_epoch)
        stopper.best_weights = copy.deepcopy(best)
    checkpoints.set_rng_state(saved["rng"])
    return list(saved["rows"]), bool(saved["stopped_early"])
