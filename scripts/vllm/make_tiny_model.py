"""Build a tiny random-weight Llama that vLLM can serve, with no download.

    <vllm venv>/bin/python scripts/vllm/make_tiny_model.py OUTDIR

Writes into OUTDIR (atomically: built next to it, then renamed):
  config.json, generation_config.json, model.safetensors     LlamaForCausalLM, bfloat16
  tokenizer.json, tokenizer_config.json (with a ChatML chat_template), special_tokens_map.json
  hermes-tiny-model.json                                      what was built, for reuse checks

Shape: hidden 128, intermediate 256, 2 layers, 2 attention heads, 1 KV head -> head_dim 64 (the CPU
attention kernel refuses head_dim 16), max_position_embeddings 4096. KV cache per token:
2 (K,V) x 2 layers x 1 KV head x 64 x 2 bytes = 512 bytes. The tokenizer is a byte-level BPE trained
here on generated text (512 entries). Everything is seeded: the same inputs give the same files.
The output is noise; timing, caching and the API are real.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

from tiny_build import build_once  # this folder (the script's own) is first on sys.path

FORMAT_VERSION = "tiny-llama-v1"
SEED = 20240611
VOCAB_SIZE = 512
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
ARCH = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 4096,
}

_WORDS_TEXT = (
    "the a an of to in on for with and or not is are was be cache model request token prefix "
    "server redis vector search python install ubuntu kubernetes pod node gpu memory latency "
    "what how why when where which who can do does should would could please explain describe "
    "list show give write summarise translate compare version error config policy tenant answer "
    "question user assistant system hello thanks yes no one two three four five ten hundred fast "
    "slow small large new old first last same different never always quickly simply"
)
WORDS = tuple(_WORDS_TEXT.split())


def training_text(rng: random.Random, lines: int = 4000) -> list[str]:
    """Deterministic pseudo-English with digits, punctuation and ChatML framing."""
    out = []
    for i in range(lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 18))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 2048)))
        sentence = " ".join(words).capitalize() + rng.choice([".", "?", "!", ",", ":"])
        role = ("system", "user", "assistant")[i % 3]
        out.append(f"<|im_start|>{role}\n{sentence}<|im_end|>\n" if i % 2 else sentence + "\n")
    return out


def build_tokenizer(rng: random.Random):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_text(rng), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        model_max_length=ARCH["max_position_embeddings"],
        chat_template=CHATML_TEMPLATE,
    )


def build(out: Path) -> None:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    rng = random.Random(SEED)
    torch.manual_seed(SEED)
    tokenizer = build_tokenizer(rng)
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        **ARCH,
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    model.config.torch_dtype = torch.bfloat16  # transformers < 5 reads this name
    model.config.dtype = torch.bfloat16
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)

    # The chat template lives in tokenizer_config.json (newer transformers put it in
    # chat_template.jinja by default; vLLM reads either, older tools only the former).
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["chat_template"] = CHATML_TEMPLATE
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"  # a name transformers 4 and 5 both know
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    (out / "chat_template.jinja").unlink(missing_ok=True)
    for f in out.iterdir():
        f.chmod(0o644)

    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        digest.update((out / name).read_bytes())
    head_dim = ARCH["hidden_size"] // ARCH["num_attention_heads"]
    kv_bytes = 2 * ARCH["num_hidden_layers"] * ARCH["num_key_value_heads"] * head_dim * 2
    (out / "hermes-tiny-model.json").write_text(
        json.dumps(
            {
                "format": FORMAT_VERSION,
                "seed": SEED,
                "vocab_size": len(tokenizer),
                "head_dim": head_dim,
                "dtype": "bfloat16",
                "kv_bytes_per_token": kv_bytes,
                "sha256": digest.hexdigest(),
                **ARCH,
            },
            indent=2,
        )
        + "\n"
    )


def main(argv: list[str]) -> int:
    return build_once(argv, __doc__ or "", "hermes-tiny-model.json", FORMAT_VERSION, build)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
