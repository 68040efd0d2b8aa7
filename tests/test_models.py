"""The models are the notebook's networks, sized from the data."""

import torch
from notebook import MultiInputNet as NotebookMultiInput  # tests/notebook.py
from notebook import MultiOutputNet as NotebookMultiOutput
from torch import nn

from omniglot_mtl.models.networks import ModelConfig, build_model


def test_multi_input_is_the_notebook_network():
    torch.manual_seed(0)
    ref = NotebookMultiInput(30, 964)
    ours = build_model(ModelConfig("multi_input", n_alphabets=30, n_characters=964))
    ours.load_state_dict(ref.state_dict())  # same names, same shapes
    image, alphabet = torch.rand(5, 1, 64, 64), torch.tensor([0, 3, 29, 7, 7])
    expected = ref(image, nn.functional.one_hot(alphabet, 30).float())
    assert torch.allclose(ours(image, alphabet)["character"], expected, atol=1e-6)


def test_multi_output_is_the_notebook_network():
    torch.manual_seed(0)
    ref = NotebookMultiOutput(30, 964)
    ours = build_model(ModelConfig("multi_output", n_alphabets=30, n_characters=964))
    ours.load_state_dict(ref.state_dict())
    image = torch.rand(4, 1, 64, 64)
    alpha, char = ref(image)
    out = ours(image)
    assert torch.allclose(out["alphabet"], alpha, atol=1e-6)
    assert torch.allclose(out["character"], char, atol=1e-6)


def test_same_seed_same_initial_weights_and_state_dict_as_the_notebook():
    torch.manual_seed(0)
    ref = NotebookMultiOutput(5, 7)
    torch.manual_seed(0)
    ours = build_model(ModelConfig("multi_output", n_alphabets=5, n_characters=7))
    mine, theirs = ours.state_dict(), ref.state_dict()
    assert list(mine) == list(theirs)
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    ours.load_state_dict(mine)  # and back in
    assert all(torch.equal(ours.state_dict()[k], theirs[k]) for k in theirs)


def test_sizes_come_from_the_config():
    model = build_model(ModelConfig("multi_output", n_alphabets=3, n_characters=11, image_size=20))
    out = model(torch.rand(2, 1, 20, 20))
    assert out["alphabet"].shape == (2, 3) and out["character"].shape == (2, 11)
    assert model.image_layer[4].in_features == 16 * 10 * 10
    assert model.inputs == ("image",) and model.tasks == ("alphabet", "character")


def test_convnet_sizes_its_heads_from_the_backbone():
    for size in (16, 28, 48):
        mo = build_model(
            ModelConfig("multi_output", n_alphabets=3, n_characters=11, image_size=size, backbone="convnet")
        )
        out = mo(torch.rand(2, 1, size, size))
        assert out["alphabet"].shape == (2, 3) and out["character"].shape == (2, 11)
        width = mo.image_layer.features
        assert mo.classifier_alpha.in_features == width and mo.classifier_char.in_features == width
        mi = build_model(
            ModelConfig("multi_input", n_alphabets=3, n_characters=11, image_size=size, backbone="convnet")
        )
        assert mi(torch.rand(2, 1, size, size), torch.tensor([0, 2]))["character"].shape == (2, 11)
        assert mi.classifier[0].in_features == width + 8  # image features joined to the alphabet's 8


def test_convnet_reads_ink_on_paper():
    # The network inverts its input (ink 1, paper 0), so a blank page is all zeros inside.
    torch.manual_seed(0)
    net = build_model(ModelConfig("multi_output", 3, 5, 32, "convnet")).image_layer.eval()
    assert net.features == 256 * 2 * 2
    blank, image = torch.ones(1, 1, 32, 32), torch.rand(1, 1, 32, 32)
    assert torch.equal(net(blank), net.blocks(torch.zeros(1, 1, 32, 32)).flatten(1))
    assert torch.allclose(net(image), net.blocks(1 - image).flatten(1))
