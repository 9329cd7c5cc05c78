"""Stage 3, the networks and their losses (chapter 4).

- `resnet`: ResNet-18/34/50 written from scratch, key for key torchvision's.
- `densenet`: DenseNet-121 written from scratch, key for key torchvision's (chapter 10).
- `pretrained`: ImageNet or saved weights into a network, the head replaced (chapter 10).
- `registry`: `build(arch, ...)`, the one builder of every network by name.
- `losses`: cross-entropy with label smoothing, class weights, focal loss.
- `syncbn`: BatchNorm over every process's batch, for data-parallel training (chapter 14).
"""
