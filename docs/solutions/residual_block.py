"""Worked solution: the residual block's forward pass (chapter 4).

python -m pathmnist.exercises check docs/solutions/residual_block.py
"""

REPLACES = {"pathmnist.model.resnet.BasicBlock.forward": "forward"}
ORACLE_TESTS = (
    "test_each_block_and_branch_matches_torchvision",
    "test_state_dict_parameters_and_outputs_match_torchvision[resnet18-9]",
    "test_stage_shapes_at_64[imagenet-expected0]",
)


def forward(self, x):
    """x (B, C_in, H, W) -> (B, C, H / stride, W / stride): relu(F(x) + shortcut(x))."""
    identity = x if self.downsample is None else self.downsample(x)  # The shortcut.
    out = self.relu(self.bn1(self.conv1(x)))  # (B, C, H / stride, W / stride)
    out = self.bn2(self.conv2(out))  # F(x), same shape
    return self.relu(out + identity)  # The addition first, then the last ReLU.
