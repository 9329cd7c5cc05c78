"""Stage 2, the batched transforms, on the device (chapter 3 and lesson 4).

- `transforms`: uint8 to float, normalisation, resize, Compose and `build_transforms`,
  the pipeline factory every run uses.
- `dihedral`: flips and 90-degree rotations, and the 8 views of test-time augmentation.
- `color`: brightness, contrast, saturation and hue jitter.
- `stain`: colour deconvolution (HED), HED jitter and Macenko normalisation.
- `mixing`: MixUp and CutMix.
- `randaugment`: RandAugment's 14 operations, per image, batched (chapter 10).
- `randstainna`: RandStainNA, per-image stain statistics drawn from the training split's.
"""
