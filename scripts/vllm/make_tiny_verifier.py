"""Build a tiny random-weight BERT cross-encoder that vLLM serves on /rerank, with no download.

    <vllm venv>/bin/python scripts/vllm/make_tiny_verifier.py OUTDIR

Writes into OUTDIR (atomically: built next to it, then renamed):
  config.json, model.safetensors                   BertForSequenceClassification, num_labels 1, float32
  tokenizer.json, tokenizer_config.json
  hermes-tiny-verifier.json                        what was built, for reuse checks

Shape: hidden 64, intermediate 128, 2 layers, 2 attention heads, max_position_embeddings 512 (so a
server must not ask for a longer max-model-len). One label: vLLM treats it as a cross-encoder and
answers /rerank and /score with a sigmoid of the logit, so every relevance_score lies strictly
between 0 and 1 (about 0.5 with these weights). The tokenizer is a lower-case WordPiece over a fixed
list (174 entries: some question words, then every letter and digit, so any English question
maps to known pieces); its post-processor builds the pair input "[CLS] query [SEP] document [SEP]"
with token type 1 on the document, as a real BERT cross-encoder expects. Everything is seeded: the
same inputs give the same files. The scores are noise; the wire format, batching and timing are real.
"""

from __future__ import annotations

import hashlib
import json
import string
import sys
from pathlib import Path

from tiny_build import build_once  # this folder (the script's own) is first on sys.path

FORMAT_VERSION = "tiny-verifier-v1"
SEED = 20240612
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ARCH = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "max_position_embeddings": 512,
}

_WORDS_TEXT = (
    "the a an of to in on for with and or not is are was be my your how do i can what when where "
    "why which who does should cancel subscription open closed clinic sunday monday password reset "
    "order refund account install python ubuntu cache model server redis kubernetes pod gpu memory "
    "enable disable delete create price plan version error please explain one two three ten"
)
WORDS = tuple(_WORDS_TEXT.split())


def vocabulary() -> dict[str, int]:
    """WordPiece entries: the special tokens, whole words, then every letter, digit and punctuation
    mark alone and as a word continuation (``##x``), so any English question maps to known pieces
    instead of [UNK]. Listed, not trained: the tokenizers trainer breaks ties between equally
    frequent characters in hash order, which differs from run to run."""
    chars = string.ascii_lowercase + string.digits
    pieces = [*SPECIAL_TOKENS, *sorted(set(WORDS)), *chars, *string.punctuation, *(f"##{c}" for c in chars)]
    return {piece: i for i, piece in enumerate(pieces)}


def build_tokenizer():  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(vocabulary(), unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=ARCH["max_position_embeddings"],
        # BERT tells query from document by token type: the tokenizer must hand them to the model
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def build(out: Path) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(SEED)
    tokenizer = build_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        type_vocab_size=2,
        **ARCH,
    )
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)

    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"  # a name transformers 4 and 5 both know
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    for f in out.iterdir():
        f.chmod(0o644)

    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        digest.update((out / name).read_bytes())
    (out / "hermes-tiny-verifier.json").write_text(
        json.dumps(
            {
                "format": FORMAT_VERSION,
                "seed": SEED,
                "vocab_size": len(tokenizer),
                "num_labels": 1,
                "dtype": "float32",
                "sha256": digest.hexdigest(),
                **ARCH,
            },
            indent=2,
        )
        + "\n"
    )


def main(argv: list[str]) -> int:
    return build_once(argv, __doc__ or "", "hermes-tiny-verifier.json", FORMAT_VERSION, build)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
