"""hack/tiny_models.py builds loadable tiny checkpoints locally, with the tokenizer features the tests need."""

from __future__ import annotations

import pathlib

import pytest
import transformers

from hack import tiny_models


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {kind: tiny_models.build(kind, root / kind) for kind in tiny_models.KINDS}


def test_causal_lm_tokenizer_has_a_chat_template(built: dict[str, pathlib.Path]) -> None:
    tok = transformers.AutoTokenizer.from_pretrained(str(built["causal-lm"]))
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|user|>\nhi</s>\n<|assistant|>\n"


@pytest.mark.parametrize(
    ("kind", "auto"),
    [("causal-lm", "AutoModelForCausalLM"), ("seq2seq", "AutoModelForSeq2SeqLM"), ("encoder", "AutoModel")],
)
def test_models_load_and_stay_tiny(built: dict[str, pathlib.Path], kind: str, auto: str) -> None:
    model = getattr(transformers, auto).from_pretrained(str(built[kind]))
    assert sum(p.numel() for p in model.parameters()) < 500_000


def test_encoder_tokenizer_splits_unknown_words_instead_of_unk(built: dict[str, pathlib.Path]) -> None:
    tok = transformers.AutoTokenizer.from_pretrained(str(built["encoder"]))
    ids = tok("Quixotic zephyrs 2048")["input_ids"]
    assert tok.unk_token_id not in ids


def test_unknown_kind_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="causal-lm"):
        tiny_models.build("gpt", tmp_path)
