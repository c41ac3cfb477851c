import pytest
import torch

from xmodal.config import ModelConfig
from xmodal.errors import ConfigError, RecordError
from xmodal.models import registry
from xmodal.models.cmr import CineEncoder, PhaseEncoder
from xmodal.models.densenet import DenseNet121
from xmodal.models.ecg import ECGEncoder
from xmodal.models.small_cnn import SmallCNN

TINY = ModelConfig(ecg_width=32, ecg_layers=1, ecg_heads=2, image_width=8)


def test_build_ecg_encoder():
    enc = registry.build_ecg_encoder(TINY, seq_len=500)
    assert isinstance(enc, ECGEncoder) and enc.n_tokens == 100 and enc.out_dim == 32


@pytest.mark.parametrize("name,cls", [("densenet121", DenseNet121), ("small_cnn", SmallCNN),
                                      ("cine_transformer", CineEncoder), ("phase_cnn", PhaseEncoder)])
def test_build_image_encoder(name, cls):
    from dataclasses import replace
    assert isinstance(registry.build_image_encoder(replace(TINY, image_encoder=name)), cls)


def test_unknown_names_list_valid_ones():
    from dataclasses import replace
    with pytest.raises(ConfigError, match="model.ecg_encoder='lstm'.*cromotex_transformer"):
        registry.build_ecg_encoder(replace(TINY, ecg_encoder="lstm"), 1000)
    with pytest.raises(ConfigError, match="densenet121, phase_cnn, small_cnn"):
        registry.build_image_encoder(replace(TINY, image_encoder="densenet"))


def test_width_not_divisible_by_heads():
    from dataclasses import replace
    with pytest.raises(ConfigError, match="ecg_heads"):
        registry.build_ecg_encoder(replace(TINY, ecg_width=30, ecg_heads=4), 1000)


def test_image_weights_loaded_and_missing(tmp_path):
    from dataclasses import replace
    src = SmallCNN(1, width=8)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    model = registry.build_image_encoder(replace(TINY, image_encoder="small_cnn", image_weights=str(tmp_path / "w.pt")))
    torch.testing.assert_close(model.state_dict(), src.state_dict())
    with pytest.raises(RecordError, match="missing.pt"):
        registry.build_image_encoder(replace(TINY, image_encoder="small_cnn",
                                             image_weights=str(tmp_path / "missing.pt")))
