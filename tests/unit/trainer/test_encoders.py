"""Record shapes → token ids and labels: word alignment, answer spans, label ids, chat loss masks."""

from __future__ import annotations

import pytest
import transformers

from hack import tiny_models
from kubeft_trainer import errors
from kubeft_trainer.data import encode


def test_word_labels_go_on_first_subwords_only() -> None:
    assert encode.align_word_labels([None, 0, 1, 1, 2, None], [3, 4, 5]) == [-100, 3, 4, -100, 5, -100]


def test_answer_start_is_checked_and_searched_when_wrong() -> None:
    context = "the capital is paris"
    assert encode.answer_span(context, {"text": "paris", "start": 15}, record=0) == (15, 20)
    assert encode.answer_span(context, {"text": "paris", "start": 2}, record=0) == (15, 20)


def test_answer_missing_from_context_is_dataset_invalid() -> None:
    with pytest.raises(errors.DatasetInvalid, match="record 3"):
        encode.answer_span("no answer here", {"text": "paris", "start": 0}, record=3)


def test_token_span_covers_the_answer_in_the_context() -> None:
    offsets = [(0, 0), (0, 4), (0, 0), (0, 3), (4, 11), (12, 14), (15, 20), (0, 0)]
    sequence_ids = [None, 0, None, 1, 1, 1, 1, None]
    assert encode.token_span(offsets, sequence_ids, 15, 20) == (6, 6)
    assert encode.token_span(offsets, sequence_ids, 4, 14) == (4, 5)


def test_token_span_of_a_truncated_answer_points_at_cls() -> None:
    offsets = [(0, 0), (0, 3), (4, 11), (0, 0)]
    assert encode.token_span(offsets, [None, 1, 1, None], 15, 20) == (0, 0)


def test_integer_labels_are_ids_and_names_are_sorted() -> None:
    assert encode.label_names([2, 0, 2], declared=None) == ["0", "1", "2"]
    assert encode.label_names(["pos", "neg", "pos"], declared=None) == ["neg", "pos"]
    assert encode.label_names(["b"], declared=["b", "a"]) == ["b", "a"]


def test_unknown_label_is_dataset_invalid() -> None:
    to_id = encode.label_mapper(["neg", "pos"])
    assert (to_id("pos"), to_id(0)) == (1, 0)
    with pytest.raises(errors.DatasetInvalid, match="'meh'"):
        to_id("meh")
    with pytest.raises(errors.DatasetInvalid):
        to_id(2)


def test_missing_fields_are_named_with_the_fields_present() -> None:
    with pytest.raises(errors.DatasetInvalid, match=r"`body` \(spec.dataset.fields.text\).*label, prompt"):
        encode.check_columns(["prompt", "label"], fields={"text": "body"}, source="x.jsonl")


@pytest.fixture(scope="module")
def chat_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> transformers.PreTrainedTokenizerBase:
    path = tiny_models.build_causal_lm(tmp_path_factory.mktemp("llm") / "m")
    return transformers.AutoTokenizer.from_pretrained(str(path))


def test_chat_loss_covers_only_the_assistant_turns(chat_tokenizer: transformers.PreTrainedTokenizerBase) -> None:
    encoder = encode.Encoder(chat_tokenizer, {"messages": "messages"}, max_length=128)
    chat = [
        {"role": "user", "content": "capital of france?"},
        {"role": "assistant", "content": "paris"},
        {"role": "user", "content": "and italy?"},
        {"role": "assistant", "content": "rome"},
    ]
    out = encoder.chat({"messages": [chat]})
    ids, labels = out["input_ids"][0], out["labels"][0]
    learned = chat_tokenizer.decode([t for t, lab in zip(ids, labels, strict=True) if lab != -100])
    assert learned.replace("</s>", "|").split() == ["paris|", "rome|"]


def test_prompt_tokens_carry_no_loss(chat_tokenizer: transformers.PreTrainedTokenizerBase) -> None:
    encoder = encode.Encoder(chat_tokenizer, {"prompt": "p", "completion": "c"}, max_length=128)
    out = encoder.prompt_completion({"p": ["capital of france?"], "c": [" paris"]})
    ids, labels = out["input_ids"][0], out["labels"][0]
    learned = [t for t, lab in zip(ids, labels, strict=True) if lab != -100]
    assert chat_tokenizer.decode(learned) == " paris</s>"
    assert ids[: len(ids) - len(learned)] == chat_tokenizer("capital of france?")["input_ids"]


def test_records_are_truncated_to_max_length(chat_tokenizer: transformers.PreTrainedTokenizerBase) -> None:
    encoder = encode.Encoder(chat_tokenizer, {"text": "t"}, max_length=8)
    out = encoder.text({"t": ["the capital of france is paris and the capital of italy is rome"]})
    assert len(out["input_ids"][0]) == 8
