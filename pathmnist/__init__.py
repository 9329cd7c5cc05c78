"""pathmnist: ResNet-18 from scratch on PathMNIST, as a test-driven course.

The package is grouped by the course's stages; a lower stage never imports a higher one
(tests/test_layout.py checks it). Each subpackage's docstring says what lives where.

- Top level: `errors` (PathMNISTError), `checks` (argument checks), `files` (atomic
  writes), `config` (TrainConfig and the choices), `device` (device and precision),
  `cli` (the examples' flags), `exercises` (the learner's checker).
- `data` -> `augment` -> `model` -> `evaluation` -> `training` -> `studies` -> `report`.
"""

__version__ = "0.1.0"
