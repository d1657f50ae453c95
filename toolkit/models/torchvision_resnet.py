"""torchvision's ResNets of basic blocks (``resnet18``, ``resnet34``) in NumPy.

The architecture of ``torchvision.models.resnet18`` exactly (He et al., 2016), for any
input size and number of classes::

    conv1   7x7/2, 64, pad 3, no bias -> bn1 -> relu        224 -> 112   (32 -> 16)
    maxpool 3x3/2, pad 1 (pad2d(-inf) + maxpool2d)          112 -> 56    (16 -> 8)
    layer1  blocks of 64 filters                             56          (8)
    layer2  blocks of 128, the first 3x3/2 + 1x1/2 projection  28        (4)
    layer3  blocks of 256, likewise                          14          (2)
    layer4  blocks of 512, likewise                          7           (1)
    avgpool global average -> fc dense(num_outputs)

A basic block is ``residual_block`` (conv3x3(s) -> bn -> relu -> conv3x3 -> bn, plus the
identity or a 1x1/s conv + bn projection, -> relu). ResNet-18 has 2 blocks per stage,
ResNet-34 3, 4, 6, 3. Sizes floor as in PyTorch (any H, W >= 29 keeps layer4 non-empty;
smaller images work down to 1x1 maps).

The model is a :class:`~toolkit.nn.named_sequential.NamedSequential` whose parameter
paths are torchvision's module names (``layer2.0.conv1``; the projection ``proj`` /
``proj_bn`` is torchvision's ``downsample.0`` / ``downsample.1``), so
:mod:`toolkit.interop.named_state` maps it to a torchvision ``state_dict`` key by key, and
stages freeze by name: ``transfer.freeze=[conv1, bn1, layer1, layer2, layer3]``.
"""

from __future__ import annotations

from toolkit.models.cnn import check_image_shape
from toolkit.nn.avg_pool import GlobalAvgPool
from toolkit.nn.conv import Conv2d
from toolkit.nn.dense import Dense
from toolkit.nn.named_sequential import NamedSequential
from toolkit.nn.norm import BatchNorm2d
from toolkit.nn.pad import Pad2d
from toolkit.nn.pool import MaxPool2d
from toolkit.nn.residual import ResidualBlock
from toolkit.registry import activations, models

#: blocks per stage of each architecture; stage i has 64 * 2**i filters
BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
#: the stages in order, as torchvision names them
STAGES = (
    "conv1",
    "bn1",
    "relu",
    "maxpool",
    "layer1",
    "layer2",
    "layer3",
    "layer4",
    "avgpool",
    "fc",
)


def basic_resnet(arch: str, input_shape: tuple[int, ...], num_outputs: int) -> NamedSequential:
    """The unbuilt ResNet ``arch`` (a key of :data:`BLOCKS`) for per-sample
    ``input_shape`` (C, H, W) and ``num_outputs`` classes."""
    check_image_shape(arch, input_shape)
    stages: dict = {
        "conv1": Conv2d(64, 7, stride=2, padding=3, bias=False, floor_mode=True),
        "bn1": BatchNorm2d(),
        "relu": activations.build("relu"),
        "maxpool": NamedSequential({"pad": Pad2d(1, float("-inf")), "pool": MaxPool2d(3, 2)}),
    }
    for index, depth in enumerate(BLOCKS[arch]):
        width = 64 * 2**index
        blocks = {
            str(b): ResidualBlock(width, stride=2 if index and b == 0 else 1) for b in range(depth)
        }
        stages[f"layer{index + 1}"] = NamedSequential(blocks)
    stages["avgpool"] = GlobalAvgPool()
    stages["fc"] = Dense(num_outputs, init="xavier")
    return NamedSequential(stages)


@models.register("resnet18")
def resnet18(input_shape: tuple[int, ...], num_outputs: int, /) -> NamedSequential:
    """torchvision's ResNet-18 (11.2M parameters with 1000 classes): see the module notes."""
    return basic_resnet("resnet18", input_shape, num_outputs)


@models.register("resnet34")
def resnet34(input_shape: tuple[int, ...], num_outputs: int, /) -> NamedSequential:
    """torchvision's ResNet-34 (21.3M parameters with 1000 classes): see the module notes."""
    return basic_resnet("resnet34", input_shape, num_outputs)
