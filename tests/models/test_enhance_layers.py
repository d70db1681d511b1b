"""Enhance layers on their own: DCNv2 against plain convolution, SPPF against SPP, attention
layers against their formulas and the identity at initialisation."""

import pytest
import torch
import torch.nn.functional as F

from core.errors import ConfigError
from core.models.enhance import (
    CBAM,
    SPP,
    SPPF,
    ContextBlock,
    ModulatedDeformConv2d,
    NonLocal2d,
    SELayer,
)
from core.models.enhance.common import identity_gate
from core.plugins import get_registries


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Overwrite every parameter (the zero-initialised ones included) with random values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    return module


# ---- DCNv2 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stride", "dilation", "groups", "deform_groups", "bias"),
    [(1, 1, 1, 1, False), (2, 1, 1, 2, True), (1, 2, 2, 1, True)],
)
def test_dcn_with_zero_offsets_and_unit_masks_is_a_plain_conv(
    stride, dilation, groups, deform_groups, bias
):
    torch.manual_seed(0)
    dcn = ModulatedDeformConv2d(
        4, 6, 3, stride, dilation=dilation, groups=groups, deform_groups=deform_groups, bias=bias
    )
    if bias:
        torch.nn.init.normal_(dcn.bias)
    x = torch.randn(2, 4, 11, 9)
    expected = F.conv2d(x, dcn.weight, dcn.bias, stride, dcn.padding, dilation, groups)
    points = deform_groups * 9
    height, width = expected.shape[-2:]
    offset = torch.zeros(2, 2 * points, height, width)
    mask = torch.ones(2, points, height, width)
    torch.testing.assert_close(dcn.deform(x, offset, mask), expected, rtol=1e-5, atol=1e-5)
    assert dcn(x).shape == expected.shape


def test_dcn_starts_on_the_regular_grid_with_half_masks():
    torch.manual_seed(0)
    dcn = ModulatedDeformConv2d(3, 5)
    x = torch.randn(1, 3, 8, 8)
    expected = 0.5 * F.conv2d(x, dcn.weight, padding=1)  # sigmoid(0) = 0.5
    torch.testing.assert_close(dcn(x), expected, rtol=1e-5, atol=1e-5)


def test_dcn_offset_moves_the_sampling_point_by_hand():
    # 1x1 kernel on the row [0, 2, 4]: dx = +0.5 samples halfway to the right neighbour,
    # zero outside the image; dy = +1 samples the row below (zeros).
    dcn = ModulatedDeformConv2d(1, 1, kernel_size=1)
    with torch.no_grad():
        dcn.weight.fill_(1.0)
    x = torch.tensor([[[[0.0, 2.0, 4.0]]]])
    mask = torch.ones(1, 1, 1, 3)
    half_right = torch.tensor([0.0, 0.5]).view(1, 2, 1, 1).expand(1, 2, 1, 3)
    out = dcn.deform(x, half_right, mask)
    assert out.flatten().tolist() == [1.0, 3.0, 2.0]
    one_down = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 1, 3)
    assert dcn.deform(x, one_down, mask).flatten().tolist() == [0.0, 0.0, 0.0]
    assert dcn.deform(x, torch.zeros(1, 2, 1, 3), 0.25 * mask).flatten().tolist() == [0, 0.5, 1]


def test_dcn_gradients_reach_the_offsets_and_masks():
    torch.manual_seed(0)
    dcn = ModulatedDeformConv2d(3, 4)
    x = torch.randn(2, 3, 10, 10)
    dcn(x).square().sum().backward()
    grad = dcn.conv_offset.weight.grad
    offset_rows, mask_rows = grad[: 2 * 9], grad[2 * 9 :]
    assert offset_rows.abs().amax(dim=(1, 2, 3)).min() > 0  # every offset channel learns
    assert mask_rows.abs().amax(dim=(1, 2, 3)).min() > 0
    before = dcn(x).detach()
    with torch.no_grad():
        dcn.conv_offset.weight -= 1e-3 * grad
        dcn.conv_offset.bias -= 1e-3 * dcn.conv_offset.bias.grad
    assert not torch.allclose(dcn(x), before)


def test_dcn_offset_gradient_matches_finite_differences():
    torch.manual_seed(0)
    dcn = ModulatedDeformConv2d(2, 3).double()
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    # fractional offsets: away from integer positions the bilinear sampling is differentiable
    offset = (0.3 + 0.4 * torch.rand(1, 18, 6, 6, dtype=torch.float64)).requires_grad_()
    mask = torch.rand(1, 9, 6, 6, dtype=torch.float64)
    weights = torch.randn(1, 3, 6, 6, dtype=torch.float64)

    def loss(off):
        return (dcn.deform(x, off, mask) * weights).sum()

    (grad,) = torch.autograd.grad(loss(offset), offset)
    step = 1e-6
    for index in [(0, 0, 2, 3), (0, 7, 1, 4), (0, 17, 5, 0)]:
        shift = torch.zeros_like(offset)
        shift[index] = step
        numeric = (loss(offset + shift) - loss(offset - shift)) / (2 * step)
        torch.testing.assert_close(grad[index], numeric.detach(), rtol=1e-5, atol=1e-7)


def test_dcn_config_errors():
    with pytest.raises(ConfigError, match="deform_groups: expected a positive divisor"):
        ModulatedDeformConv2d(6, deform_groups=4)
    with pytest.raises(ConfigError, match="kernel_size: expected a positive int"):
        ModulatedDeformConv2d(6, kernel_size=0)


# ---- SPP / SPPF --------------------------------------------------------------------------


def test_sppf_equals_spp_with_the_matching_kernels():
    spp = randomize_(SPP(8, kernel_sizes=(5, 9, 13))).eval()
    sppf = SPPF(8, kernel_size=5, num_pools=3).eval()
    sppf.load_state_dict(spp.state_dict())  # same parameter names: reduce, fuse
    x = torch.randn(2, 8, 17, 23)
    torch.testing.assert_close(sppf(x), spp(x), rtol=0, atol=0)
    spp3 = randomize_(SPP(8, 4, kernel_sizes=(3, 5))).eval()
    sppf3 = SPPF(8, 4, kernel_size=3, num_pools=2).eval()
    sppf3.load_state_dict(spp3.state_dict())
    torch.testing.assert_close(sppf3(x), spp3(x), rtol=0, atol=0)
    assert spp3(x).shape == (2, 4, 17, 23)


def test_spp_pools_spread_a_peak_over_their_windows():
    spp = SPP(2, kernel_sizes=(3, 5))
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 6] = 1.0
    small, large = spp.pools(x)
    expected_small = torch.zeros(9, 9)
    expected_small[3:6, 5:8] = 1.0
    expected_large = torch.zeros(9, 9)
    expected_large[2:7, 4:9] = 1.0  # clipped at the right border
    assert torch.equal(small[0, 0], expected_small) and torch.equal(large[0, 0], expected_large)


def test_spp_config_errors():
    with pytest.raises(ConfigError, match="kernel_sizes: expected odd positive ints"):
        SPP(8, kernel_sizes=(5, 8))
    with pytest.raises(ConfigError, match="kernel_size: expected an odd positive int"):
        SPPF(8, kernel_size=4)


# ---- attention layers --------------------------------------------------------------------

ATTENTION_LAYERS = {
    "SE": lambda c: SELayer(c, ratio=0.25),
    "CBAM": lambda c: CBAM(c, ratio=0.25),
    "NonLocal2d": lambda c: NonLocal2d(c),
    "ContextBlock-add": lambda c: ContextBlock(c, ratio=0.25),
    "ContextBlock-mul-avg": lambda c: ContextBlock(
        c, ratio=0.25, pooling_type="avg", fusion_types=("channel_mul",)
    ),
    "ContextBlock-both": lambda c: ContextBlock(
        c, ratio=0.25, fusion_types=("channel_add", "channel_mul")
    ),
}


def test_identity_gate_is_one_at_zero_and_bounded():
    assert identity_gate(torch.zeros(3)).tolist() == [1.0, 1.0, 1.0]
    extremes = identity_gate(torch.tensor([-50.0, 50.0]))
    torch.testing.assert_close(extremes, torch.tensor([0.0, 2.0]))
    assert identity_gate(torch.tensor(1.0)) == 2 / (1 + torch.exp(torch.tensor(-1.0)))


@pytest.mark.parametrize("name", ATTENTION_LAYERS)
@pytest.mark.parametrize("training", [True, False])
def test_attention_layers_start_as_the_identity(name, training):
    torch.manual_seed(0)
    layer = ATTENTION_LAYERS[name](16).train(training)
    x = torch.randn(2, 16, 7, 9)
    assert torch.equal(layer(x), x)
    randomize_(layer)  # once trained, the layer changes its input
    assert not torch.allclose(layer(x), x, atol=1e-3)
    assert layer(x).shape == x.shape


def test_se_matches_its_formula():
    layer = randomize_(SELayer(8, ratio=0.5))
    x = torch.randn(3, 8, 5, 4)
    mean = x.mean(dim=(2, 3))  # (B, C)
    hidden = F.relu(mean @ layer.squeeze.weight.flatten(1).T + layer.squeeze.bias)
    logits = hidden @ layer.excite.weight.flatten(1).T + layer.excite.bias
    expected = x * 2 * torch.sigmoid(logits)[:, :, None, None]
    torch.testing.assert_close(layer(x), expected)


def test_cbam_matches_its_formula():
    layer = randomize_(CBAM(8, ratio=0.5, spatial_kernel=3))
    x = torch.randn(2, 8, 6, 5)
    first, _, last = layer.channel.mlp

    def mlp(v):  # (B, C) -> (B, C)
        hidden = F.relu(v @ first.weight.flatten(1).T + first.bias)
        return hidden @ last.weight.flatten(1).T + last.bias

    channel_gate = 2 * torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))
    y = x * channel_gate[:, :, None, None]
    pooled = torch.stack([y.mean(dim=1), y.amax(dim=1)], dim=1)
    spatial = F.conv2d(pooled, layer.spatial.conv.weight, layer.spatial.conv.bias, padding=1)
    torch.testing.assert_close(layer(x), y * 2 * torch.sigmoid(spatial))


@pytest.mark.parametrize("use_scale", [True, False])
def test_non_local_matches_the_embedded_gaussian_formula(use_scale):
    layer = randomize_(NonLocal2d(8, ratio=0.5, use_scale=use_scale)).eval()
    x = torch.randn(2, 8, 4, 5)

    def embed(conv):  # (B, C', N)
        return torch.einsum("oc,bcn->bon", conv.weight.flatten(1), x.flatten(2)) + conv.bias[
            :, None
        ]

    theta, phi, g = embed(layer.theta), embed(layer.phi), embed(layer.g)
    affinity = torch.einsum("bci,bcj->bij", theta, phi)
    if use_scale:
        affinity = affinity / 4**0.5  # C' = 8 * 0.5
    y = torch.einsum("bij,bcj->bci", torch.softmax(affinity, dim=-1), g).reshape(2, 4, 4, 5)
    z = F.conv2d(y, layer.conv_out.weight)
    norm = layer.norm
    z = (z - norm.running_mean[:, None, None]) / torch.sqrt(norm.running_var + norm.eps)[
        :, None, None
    ]
    z = z * norm.weight[:, None, None] + norm.bias[:, None, None]
    torch.testing.assert_close(layer(x), x + z, rtol=1e-4, atol=1e-5)


def test_context_block_attention_pooling():
    block = ContextBlock(4)
    x = torch.randn(2, 4, 3, 5)
    # a zero mask conv gives uniform weights: attention pooling is average pooling
    torch.nn.init.zeros_(block.conv_mask.weight)
    torch.testing.assert_close(block.context(x), x.mean(dim=(2, 3), keepdim=True))
    # otherwise the weights are softmax(w . x + b) over the positions
    randomize_(block)
    logits = torch.einsum("c,bcn->bn", block.conv_mask.weight.flatten(), x.flatten(2))
    weights = torch.softmax(logits + block.conv_mask.bias, dim=-1)
    expected = torch.einsum("bcn,bn->bc", x.flatten(2), weights)[:, :, None, None]
    torch.testing.assert_close(block.context(x), expected)
    transform = block.channel_add
    torch.testing.assert_close(block(x), x + transform(expected))


def test_attention_config_errors():
    with pytest.raises(ConfigError, match=r"ratio: expected 0 < ratio <= 1, got 0.0"):
        SELayer(8, ratio=0.0)
    with pytest.raises(ConfigError, match="fusion_types: expected one or both"):
        ContextBlock(8, fusion_types=())
    with pytest.raises(ConfigError, match="spatial_kernel: expected one of"):
        CBAM(8, spatial_kernel=5)


def test_layers_are_registered_in_the_enhance_stage():
    registry = get_registries()["enhance"]
    assert set(registry.names()) >= {
        "SPP", "SPPF", "SE", "CBAM", "NonLocal2d", "ContextBlock", "DCNv2"
    }
    layer = get_registries().build("enhance", {"type": "ContextBlock", "in_channels": 8})
    assert isinstance(layer, ContextBlock) and layer.channel_add[0].in_channels == 8
    with pytest.raises(ConfigError, match=r"x\.fusion_types.*expected one of"):
        get_registries().build(
            "enhance", {"type": "ContextBlock", "in_channels": 8, "fusion_types": ["add"]}, "x"
        )
