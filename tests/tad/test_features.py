import av
import numpy as np
import pytest

from kfgrpo.tad import TADConfig, select_keyframes
from kfgrpo.tad.features import HFEncoder, PixelFeatures


def _frame(rgb, size=(64, 48)):
    arr = np.empty((size[1], size[0], 3), np.uint8)
    arr[:] = rgb
    return av.VideoFrame.from_ndarray(arr, format="rgb24").reformat(format="yuv420p")


def test_pixel_features_are_unit_norm_and_separate_colours():
    pf = PixelFeatures()
    red, red2, blue = pf(_frame((200, 30, 30))), pf(_frame((205, 28, 30))), pf(_frame((30, 30, 200)))
    for f in (red, red2, blue):
        assert abs(np.linalg.norm(f) - 1) < 1e-6
    assert red @ red2 > 0.99 and red @ blue < red @ red2 - 0.2


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A random-weight CLIP with a word-level tokenizer, saved locally (no Hub)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[EOS]", "when", "is", "it", "red", "blue", "?"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]")
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(words),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=16,
            eos_token_id=2,
            pad_token_id=0,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=16,
    )
    out = tmp_path_factory.mktemp("tiny-clip")
    CLIPModel(config).save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out)
    hf_tok.save_pretrained(out)
    return str(out)


def test_hf_encoder_features_and_query_relevance(tiny_clip, tmp_path, segment_video):
    enc = HFEncoder(tiny_clip, device="cpu", batch_size=3)
    assert enc.input_size == (32, 32) and enc.has_text_tower
    rgb = [np.full((32, 32, 3), c, np.uint8) for c in (0, 80, 160, 240)]
    feats = enc.image_features(rgb)
    assert feats.shape == (4, 16) and np.allclose(np.linalg.norm(feats, axis=1), 1, atol=1e-5)
    q = enc.text_features("when is it red ?")
    assert q.shape == (16,) and abs(np.linalg.norm(q) - 1) < 1e-5

    video = segment_video(tmp_path / "v.mp4", [(20, 20, 20), (200, 30, 30), (30, 30, 200)])
    cfg = TADConfig(encoder=f"hf:{tiny_clip}", hf_device="cpu")
    sel = select_keyframes(video, 3, config=cfg, query="when is it red ?")
    assert sel.curve.relevance is not None and sel.curve.relevance.shape == sel.curve.saliency.shape
    assert len(sel.frames) == 3 and sel.timestamps == sorted(sel.timestamps)
    plain = select_keyframes(video, 3, config=cfg)
    assert plain.curve.relevance is None
    # The query term changes the priority (λ_q · r̂), nothing else.
    assert not np.allclose(sel.curve.priority, plain.curve.priority)
    assert np.allclose(sel.curve.normalized, plain.curve.normalized)
