"""Stage 3, the networks and their losses (chapter 4).

- `resnet`: ResNet-18/34/50 written from scratch, key for key torchvision's.
- `registry`: `build(arch, ...)`, the one builder of every network by name.
- `losses`: cross-entropy with label smoothing, class weights, focal loss.
"""
