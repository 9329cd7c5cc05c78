"""Exercise for chapter 4 (ResNet-18): the residual block's forward pass.

Write `forward(self, x)` for `pathmnist.model.resnet.BasicBlock`: two 3x3 convolutions, each
followed by its BatchNorm, a ReLU between them, the shortcut added before the last ReLU:

    y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)),

where the shortcut is x itself, or `self.downsample(x)` when the block changes the shape
(its first block in layers 2-4). The block's layers are already built by `__init__`:
self.conv1, self.bn1, self.relu, self.conv2, self.bn2, self.downsample (None or a module).

The oracle: torchvision's ResNet-18 with the same weights must give the same float64
logits as the package's with your block inside, and the stages must have the shapes of
chapter 4's table:

    python -m pathmnist.exercises check docs/exercises/residual_block.py

The first test feeds each of the eight blocks the input torchvision's block receives and
names the first block and branch that differ, e.g. "block layer2.0, shortcut branch: this
block changes the shape, so the shortcut is self.downsample(x), which was not called".

Once it passes, add more of tests/test_resnet.py to ORACLE_TESTS:
"test_zero_init_residual_blocks_start_as_identity[basic]" (a block whose bn2 starts at
zero is the identity) and "test_train_mode_gradients_equal_torchvision_float64[resnet18-9]"
(every gradient equals torchvision's in training mode; slower).

Hints. The shapes for a (B, 64, 16, 16) input to layer2's first block: conv1 (stride 2)
gives (B, 128, 8, 8), conv2 keeps it, and downsample maps x to (B, 128, 8, 8) too. Mind
the order: the last ReLU comes after the addition. `self.relu` is in-place: never apply
it to `x` itself, which the shortcut still needs.
"""

REPLACES = {"pathmnist.model.resnet.BasicBlock.forward": "forward"}
ORACLE_TESTS = (
    "test_each_block_and_branch_matches_torchvision",
    "test_state_dict_parameters_and_outputs_match_torchvision[resnet18-9]",
    "test_stage_shapes_at_64[imagenet-expected0]",
)


def forward(self, x):
    """x (B, C_in, H, W) -> (B, C, H / stride, W / stride): relu(F(x) + shortcut(x))."""
    # YOUR CODE HERE
    raise NotImplementedError("write BasicBlock.forward: see docs/exercises/residual_block.py")
