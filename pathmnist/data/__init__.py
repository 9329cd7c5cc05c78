"""Stage 1, the data: PathMNIST on disk and in memory (chapters 1 and 2).

- `dataset`: the facts from medmnist.INFO, the MD5-checked download, `load_split` and
  `ImageSet` (uint8 images, int64 labels, class names), `stratified_subset`.
- `npz`: reading MedMNIST npz files, large image arrays as memory maps.
- `synthetic` and `tissue`: the offline stand-in with the same format, classes and a
  train-to-test stain shift under control.
- `loader`: `BatchLoader`, a whole split as one uint8 tensor sliced by a seeded
  permutation each epoch.
"""
