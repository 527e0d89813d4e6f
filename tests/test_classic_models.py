"""The classic CNN zoo on its own: shapes, the book's parameter counts, the Sequential convention, GoogLeNet's
auxiliary heads, residual shortcuts, and the hand-written BatchNorm against torch's."""

import pytest
import torch
from torch import nn

from dlzoo.errors import UserError
from dlzoo.models import create, model_entry
from dlzoo.models.batchnorm import BatchNorm
from dlzoo.models.resnet import Residual
from dlzoo.tasks.image_classification import classification_loss

# Parameter counts of the book's networks for one input channel and 10 classes (LeNet-5's 61,706 is the classic
# figure; the others follow from the book's layer lists).
BOOK_PARAMETERS = {
    "lenet": 61_706, "lenet-bn": 44_878, "alexnet": 46_764_746, "vgg11-small": 43_093_322, "nin": 1_992_166,
    "googlenet": 5_977_530, "resnet18": 11_178_378, "densenet": 758_226,
}


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(BOOK_PARAMETERS))
def test_book_parameter_counts(name):
    with torch.device("meta"):  # counting needs no memory
        assert count(create(name, num_classes=10, in_channels=1)) == BOOK_PARAMETERS[name]


# Global pooling lets these run below their book resolution, which keeps the test cheap.
@pytest.mark.parametrize("name", sorted(BOOK_PARAMETERS))
def test_every_layer_is_its_own_module(name):
    # A module shared between places runs its forward hooks at each of them: feature readers hooked on one
    # layer (the generative judge's) would collect several layers' outputs.
    with torch.device("meta"):
        model = create(name, num_classes=10, in_channels=1)
    places = [module for _, module in model.named_modules(remove_duplicate=False)]
    assert len({id(module) for module in places}) == len(places)


@pytest.mark.parametrize("name,size", [("lenet", 28), ("lenet-bn", 28), ("nin", 96), ("googlenet", 32),
                                       ("resnet18", 32), ("densenet", 32)])
def test_any_classes_and_channels(name, size):
    channels = 3
    model = create(name, num_classes=7, in_channels=channels).eval()
    with torch.no_grad():
        assert model(torch.rand(2, channels, size, size)).shape == (2, 7)


@pytest.mark.parametrize("name", ["lenet", "lenet-bn", "alexnet", "vgg11-small", "resnet18", "densenet"])
def test_sequential_ending_in_linear_gives_penultimate_features(name):
    model = create(name)
    assert isinstance(model, nn.Sequential) and isinstance(model[-1], nn.Linear)
    if name in ("lenet", "lenet-bn", "densenet"):  # cheap enough to run here
        size = model_entry(name).input_size[1]
        with torch.no_grad():
            features = model.eval()[:-1](torch.rand(2, 1, size, size))
        assert features.shape == (2, model[-1].in_features)


def test_nin_final_relu_switch_keeps_weights_and_frees_the_scores():
    torch.manual_seed(0)
    book, free = create("nin").eval(), create("nin", final_relu=False).eval()
    free.load_state_dict(book.state_dict())  # same parameters: the switch only drops an activation
    images = torch.rand(4, 1, 96, 96)
    with torch.no_grad():
        book_scores, free_scores = book(images), free(images)
    assert (book_scores >= 0).all()  # the book's ReLU on the class scores
    assert (free_scores < 0).any()
    # Same weights, so the two differ only in the last activation: the mean of relu(x) is never below x's mean.
    assert (book_scores >= free_scores - 1e-6).all()


def test_googlenet_auxiliary_heads_in_training_only():
    torch.manual_seed(0)
    model = create("googlenet", aux_logits=True)
    images, labels = torch.rand(2, 1, 32, 32), torch.tensor([3, 7])  # 32 px: the heads pool adaptively
    main, aux1, aux2 = model.train()(images)
    assert main.shape == aux1.shape == aux2.shape == (2, 10)
    loss, logits = classification_loss((main, aux1, aux2), labels, label_smoothing=0.0, aux_weight=0.3)
    ce = nn.functional.cross_entropy
    assert torch.allclose(loss, ce(main, labels) + 0.3 * (ce(aux1, labels) + ce(aux2, labels)))
    assert logits is main
    loss.backward()
    assert model.aux1[-1].weight.grad.abs().sum() > 0  # the side heads are trained
    with torch.no_grad():
        assert model.eval()(images).shape == (2, 10)  # eval: the main logits alone
    assert count(model) > BOOK_PARAMETERS["googlenet"]


def test_residual_block_shortcuts():
    x = torch.rand(2, 8, 12, 12, requires_grad=True)
    same = Residual(8, 8)
    assert isinstance(same.shortcut, nn.Identity) and same(x).shape == x.shape
    down = Residual(8, 16, use_1x1conv=True, stride=2)
    out = down(x)
    assert out.shape == (2, 16, 6, 6)
    out.sum().backward()
    assert down.shortcut.weight.grad is not None and x.grad is not None
    with pytest.raises(ValueError, match="use_1x1conv"):
        Residual(8, 16)


def test_model_factory_rejects_unknown_arguments():
    with pytest.raises(UserError, match="resnet18"):
        create("resnet18", depth=50)
    with pytest.raises(UserError, match="did you mean 'resnet18'"):
        create("resnet-18")


@pytest.mark.parametrize("shape,reference", [((16, 5, 6, 6), nn.BatchNorm2d), ((32, 5), nn.BatchNorm1d)])
def test_scratch_batchnorm_matches_torch(shape, reference):
    torch.manual_seed(0)
    ours, theirs = BatchNorm(5), reference(5)
    with torch.no_grad():  # non-trivial scale and shift, shared
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.uniform_(-0.5, 0.5)
    ours.load_state_dict(theirs.state_dict())  # same parameter and buffer names
    for _ in range(3):  # training mode: batch statistics, running statistics updated, gradients
        x = (torch.randn(shape) * 3 + 1).requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        out, expected = ours.train()(x), theirs.train()(x2)
        assert torch.allclose(out, expected, atol=1e-5)
        grad = torch.randn(shape)
        out.backward(grad)
        expected.backward(grad)
        assert torch.allclose(x.grad, x2.grad, atol=1e-5)
    assert torch.allclose(ours.weight.grad, theirs.weight.grad, atol=1e-4)
    assert torch.allclose(ours.bias.grad, theirs.bias.grad, atol=1e-4)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.allclose(getattr(ours, name).float(), getattr(theirs, name).float(), atol=1e-6), name
    assert not torch.allclose(ours.running_var, torch.ones(5))  # the statistics really moved
    x = torch.randn(shape) * 2 - 1
    with torch.no_grad():  # eval mode: the running statistics
        assert torch.allclose(ours.eval()(x), theirs.eval()(x), atol=1e-5)
    assert {n for n, _ in ours.named_buffers()} == {"running_mean", "running_var", "num_batches_tracked"}
    assert {n for n, _ in ours.named_parameters()} == {"weight", "bias"}
    one_value = torch.randn(1, 5) if len(shape) == 2 else torch.randn(1, 5, 1, 1)  # one value per channel
    for layer in (ours.train(), theirs.train()):
        with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
            layer(one_value)


def test_lenet_bn_from_scratch_and_from_torch_are_the_same_network():
    torch.manual_seed(0)
    scratch = create("lenet-bn", scratch_bn=True)
    concise = create("lenet-bn")
    assert count(scratch) == count(concise)
    concise.load_state_dict(scratch.state_dict())
    x = torch.rand(8, 1, 28, 28)
    scratch.train()(x), concise.train()(x)  # one training batch moves both running statistics alike
    with torch.no_grad():
        assert torch.allclose(scratch.eval()(x), concise.eval()(x), atol=1e-5)
    with pytest.raises(ValueError, match=r"BatchNorm\(6\)"):
        BatchNorm(6)(torch.rand(2, 5, 3, 3))


@pytest.mark.parametrize(("name", "sizes"), [
    ("digits-net", {"width": 0}), ("fashion-net", {"width": -3}), ("densenet", {"block_sizes": (4, 0)}),
    ("vgg11", {"width_divisor": 0}), ("vae-mlp", {"hidden": (400, 0)}), ("vae-conv", {"latent_dim": 0}),
    ("cgan-generator", {"embed_dim": 0}), ("cgan-critic", {"width": 0}), ("line-crnn", {"width": 0}),
])
def test_a_size_below_one_is_refused_by_name(name, sizes):
    """Torch would build a layer of width 0 with only a warning (it fails later, about something else) and a
    negative one with a RuntimeError from deep inside: `create` says which argument is wrong."""
    key = next(iter(sizes))
    with pytest.raises(UserError, match=f"model '{name}': {key} must be >= 1"):
        create(name, **sizes)


def test_a_densenet_of_no_blocks_is_refused():
    # It built a stem and a head with nothing between them, trained, and was no longer the model named.
    with pytest.raises(UserError, match=r"model 'densenet': block_sizes must hold at least one size, got \[\]"):
        create("densenet", block_sizes=[])


@pytest.mark.parametrize("divisor", [65, 600])
def test_a_vgg_width_divisor_that_leaves_a_block_no_channels_is_refused(divisor):
    # 64 // 65 = 0 channels: torch built the block with a warning and failed in the first forward, blamed on the
    # resolution; at 600 every layer is empty and its Xavier init divided by zero (a traceback from `dlzoo train`).
    with pytest.raises(UserError, match=f"model 'vgg11': width_divisor={divisor} leaves .* at most 64"):
        create("vgg11", width_divisor=divisor)
