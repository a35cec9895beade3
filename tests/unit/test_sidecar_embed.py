"""The local embedders: both packaged models load offline, rank a paraphrase above a different
question, and a model that is not installed or not known is refused with the fix in the message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hermes_sidecar.config import DEFAULT_LOCAL_MODEL, ConfigError, parse_config
from hermes_sidecar.embed import EmbedderError, LocalEmbedder, build_embedder

QUESTION = "How do I reset my router to factory settings?"
PARAPHRASE = "What's the way to restore my router to its factory defaults?"
OTHER = "Which plans include international calls?"


@pytest.mark.parametrize("model", ["bge-small-en-v1.5-int8", "all-MiniLM-L6-v2-int8"])
def test_local_model_ranks_a_paraphrase_above_another_question(model: str) -> None:
    emb = LocalEmbedder(model)
    vecs = emb.embed_sync([QUESTION, PARAPHRASE, OTHER])
    assert vecs.shape == (3, emb.dim)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    same, other = float(vecs[0] @ vecs[1]), float(vecs[0] @ vecs[2])
    assert same > other + 0.2, (model, same, other)


def test_default_is_bge_and_aliases_resolve_to_the_same_model() -> None:
    assert DEFAULT_LOCAL_MODEL == "bge-small-en-v1.5-int8"
    default = LocalEmbedder()
    alias = LocalEmbedder("BAAI/bge-small-en-v1.5")
    assert default.name == alias.name == "bge-small-en-v1.5-int8"
    assert np.array_equal(default.embed_sync([QUESTION]), alias.embed_sync([QUESTION]))


def test_bge_pools_the_cls_token_not_the_mean() -> None:
    """bge was trained with [CLS] pooling (mean pooling would still run, with worse similarities):
    the vector must be the normalised first token of the model's output."""
    emb = LocalEmbedder("bge-small-en-v1.5-int8")
    enc = emb._tok.encode_batch([QUESTION])
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    hidden = emb._session.run(None, feeds)[0]
    first = hidden[0, 0] / np.linalg.norm(hidden[0, 0])
    assert np.allclose(emb.embed_sync([QUESTION])[0], first, atol=1e-6)


def test_model_not_installed_names_the_folder_and_the_fixes(tmp_path: Path) -> None:
    with pytest.raises(EmbedderError) as err:
        LocalEmbedder("bge-small-en-v1.5-int8", model_directory=str(tmp_path))
    msg = str(err.value)
    assert str(tmp_path) in msg
    assert "scripts/models/install.sh" in msg and "all-MiniLM-L6-v2-int8" in msg


def test_config_model_dir_reaches_the_embedder(tmp_path: Path) -> None:
    cfg = parse_config({"embedding": {"provider": "local", "modelDir": str(tmp_path)}})
    with pytest.raises(EmbedderError, match=str(tmp_path)):
        build_embedder(cfg.embedding)


def test_unknown_local_model_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"embedding": {"provider": "local", "model": "bge-large-en"}})
    msg = str(err.value)
    assert "embedding.model" in msg and "'bge-large-en'" in msg and "bge-small-en-v1.5-int8" in msg


@pytest.mark.parametrize("model", ["bge-small-en-v1.5-int8", "all-MiniLM-L6-v2-int8"])
def test_a_texts_vector_does_not_depend_on_the_texts_batched_with_it(model: str) -> None:
    """Concurrent requests share embedding batches; the decision for one must not depend on the others
    (bge's int8 graph quantises a whole batch with one scale, so it runs one text at a time)."""
    emb = LocalEmbedder(model)
    alone = emb.embed_sync([QUESTION])[0]
    for others in (["Why is the sky blue?"], [OTHER, PARAPHRASE, "Zebra " * 40]):
        batched = emb.embed_sync([QUESTION, *others])[0]
        assert np.array_equal(alone, batched), (model, float(alone @ batched))
