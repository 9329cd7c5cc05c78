"""The search spaces of `--strategy optuna`, sampled through an Optuna trial: "seed", the
seed project's grid (`studies.grid.DEFAULT_SPACE`) as categorical choices, so the three
strategies search one space; "wide", continuous where the value is (log-uniform learning
rate and weight decay), with the optimizer, batch size and lesson 4's augmentations.

Tested in tests/test_optuna_search.py: Optuna's BruteForceSampler, run on `suggest_grid`,
visits exactly the points of `grid.expand` (the grid oracle), and every wide sample is a
valid TrainConfig.
"""

from pathmnist import checks
from pathmnist.config import AUGMENTATIONS
from pathmnist.studies import grid

SPACES = ("seed", "wide")
# The "wide" space: log-uniform learning rate and weight decay (a step's size matters by
# its order of magnitude), the optimizer, the batch size, and lesson 4's augmentations.
WIDE = {
    "lr": [1e-4, 1e-1],
    "weight_decay": [1e-6, 1e-2],
    "optimizer": ["adam", "sgd"],
    "batch_size": [32, 64, 128],
    "flips": [False, True],
    "stain_jitter": ["none", "hed-light", "hed-strong"],
    "color": [False, True],
}


def _subgrid_names(subgrids) -> tuple[str, list]:
    """How a trial picks a sub-grid: the key with one value per sub-grid that tells them
    apart (the seed's: optimizer), else "subgrid" with the sub-grids' indices."""
    if len(subgrids) == 1:
        return "", [None]
    for key in subgrids[0]:
        values = [list(sub.get(key, [])) for sub in subgrids]
        tags = [v[0] for v in values if len(v) == 1]
        if len(tags) == len(subgrids) and len(set(map(str, tags))) == len(tags):
            return key, tags
    return "subgrid", list(range(len(subgrids)))


def suggest_grid(trial, space) -> dict:
    """Sample one point of a grid space (dict of lists, or list of them) as categorical
    choices. Keys whose choices differ between sub-grids get the sub-grid's tag, e.g.
    the seed's "adam_lr" in {1e-3, 3e-3} and "sgd_lr" in {1e-2, 3e-2}."""
    subgrids = [space] if isinstance(space, dict) else list(space)
    grid.expand(subgrids)  # Checks the space (TrainConfig fields, non-empty lists).
    tag_key, tags = _subgrid_names(subgrids)
    which = 0 if not tag_key else tags.index(trial.suggest_categorical(tag_key, tags))
    params = {}
    for key, values in subgrids[which].items():
        values = list(values)
        if key == tag_key:
            params[key] = values[0]
        elif len(values) == 1:
            params[key] = values[0]
        else:
            shared = all(list(sub.get(key, [])) == values for sub in subgrids)
            name = key if shared else f"{tags[which]}_{key}"
            params[key] = trial.suggest_categorical(name, values)
    return params


def suggest_wide(trial) -> dict:
    """Sample one point of the wide space as TrainConfig changes."""
    stain = trial.suggest_categorical("stain_jitter", WIDE["stain_jitter"])
    picked = {
        "flips": trial.suggest_categorical("flips", WIDE["flips"]),
        "color": trial.suggest_categorical("color", WIDE["color"]),
        stain: stain != "none",
    }
    return {
        "optimizer": trial.suggest_categorical("optimizer", WIDE["optimizer"]),
        "lr": trial.suggest_float("lr", *WIDE["lr"], log=True),
        "batch_size": trial.suggest_categorical("batch_size", WIDE["batch_size"]),
        "weight_decay": trial.suggest_float("weight_decay", *WIDE["weight_decay"], log=True),
        "augment": [a for a in AUGMENTATIONS if picked.get(a)],  # In the pipeline's order.
    }


def space_key(space: str):
    """What search.json records of a space: the grid's points, or the wide ranges."""
    checks.choice(space, "--space", SPACES)
    return {"name": space, "points": grid.expand(grid.DEFAULT_SPACE) if space == "seed" else WIDE}


def suggest(trial, space: str) -> dict:
    """One point of the named space as TrainConfig changes."""
    return suggest_grid(trial, grid.DEFAULT_SPACE) if space == "seed" else suggest_wide(trial)
