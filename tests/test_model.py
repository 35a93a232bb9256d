import math

import pytest
import torch

from gridnoise.config import ModelConfig
from gridnoise.model import MLPDenoiser, SinusoidalEmbedding


def test_embedding_formula():
    emb = SinusoidalEmbedding(128, scale=25.0)
    x = torch.tensor([0.3, -1.2])
    out = emb(x)
    assert out.shape == (2, 128)
    i = 5
    freq = math.exp(-i * math.log(10000) / 63)
    assert out[1, i].item() == pytest.approx(math.sin(-1.2 * 25 * freq), abs=1e-5)
    assert out[1, 64 + i].item() == pytest.approx(math.cos(-1.2 * 25 * freq), abs=1e-5)


def test_shapes_and_layers():
    plain = MLPDenoiser(ModelConfig())
    assert plain.network[0].in_features == 384
    assert sum(isinstance(m, torch.nn.Linear) for m in plain.modules()) == 5  # in, 3 blocks, out
    x, t = torch.randn(7, 2), torch.randint(0, 100, (7,))
    assert plain(x, t).shape == (7, 2)
    graded = MLPDenoiser(ModelConfig(), condition_dim=1)
    assert graded.network[0].in_features == 385
    g = torch.ones(7)
    assert graded(x, t, g).shape == (7, 2)
    assert not torch.allclose(graded(x, t, g), graded(x, t, 2 * g)), "g must reach the output"
    with pytest.raises(ValueError, match="1 condition input"):
        graded(x, t)
    latent = MLPDenoiser(ModelConfig(), condition_dim=3)  # a latent model's z, or a one-hot cell
    assert latent.network[0].in_features == 387
    z = torch.randn(7, 3)
    assert not torch.allclose(latent(x, t, z), latent(x, t, z.flip(1))), "every column must reach the output"
