"""Turn raw records into model inputs, one encoder per record shape (see `DatasetFields`).

Each encoder is a batched `datasets.map` function: a dict of columns in, a dict of token columns
out. Labels follow the Trainer's conventions: -100 marks tokens without loss (prompts, non-first
subwords, padding). Called by :func:`kubeft_trainer.data.prepare`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from kubeft_operator.api import spec as api_spec
from kubeft_trainer import errors

log = logging.getLogger(__name__)

IGNORE = -100
Batch = dict[str, list[Any]]

# Record shapes and the DatasetFields each reads.
SHAPE_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "prompt_completion": ("prompt", "completion"),
    "chat": ("messages",),
    "seq2seq": ("prompt", "completion"),
    "classification": ("text", "label"),
    "token_classification": ("tokens", "tags"),
    "question_answering": ("question", "context", "answer"),
    "pairs": ("text", "pair"),
}


def shape_of(spec: api_spec.FineTuneJobSpec) -> str:
    """Which record shape the task and the set fields select."""
    fields = spec.dataset.fields
    if spec.task == "CAUSAL_LM":
        if fields.messages:
            return "chat"
        if fields.prompt and fields.completion:
            return "prompt_completion"
        return "text"
    return {
        "SEQ_2_SEQ_LM": "seq2seq",
        "SEQ_CLS": "classification",
        "TOKEN_CLS": "token_classification",
        "QUESTION_ANS": "question_answering",
        "FEATURE_EXTRACTION": "pairs",
    }[spec.task]


def record_fields(spec: api_spec.FineTuneJobSpec) -> dict[str, str]:
    """Role (`text`, `label`, ...) → the record field that holds it, for the selected shape."""
    fields = spec.dataset.fields
    return {role: getattr(fields, role) for role in SHAPE_FIELDS[shape_of(spec)]}


def check_columns(columns: Sequence[str], *, fields: dict[str, str], source: str) -> None:
    """DatasetInvalid naming each missing field and the fields the records do have."""
    missing = [f"`{name}` (spec.dataset.fields.{role})" for role, name in fields.items() if name not in columns]
    if missing:
        raise errors.DatasetInvalid(
            f"records in {source} have no field {', '.join(missing)}; they have: {', '.join(sorted(columns)) or 'none'}"
        )


def label_names(values: Sequence[Any], *, declared: Sequence[str] | None) -> list[str]:
    """Class names in id order: `declared` (spec.dataset.labels) or inferred from the label values.

    Integer values are ids (names "0".."max"); other values are names, sorted.
    """
    if declared:
        return list(declared)
    unique = set(values)
    if not unique:
        raise errors.DatasetInvalid("the dataset has no labels")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in unique):
        if min(unique) < 0:
            raise errors.DatasetInvalid(f"integer labels must be >= 0, got {min(unique)}")
        return [str(i) for i in range(max(unique) + 1)]
    return sorted(str(v) for v in unique)


def label_mapper(names: Sequence[str]) -> Callable[[Any], int]:
    """Map a label value (a name, or an integer id) to its id; DatasetInvalid for unknown ones."""
    ids = {name: i for i, name in enumerate(names)}

    def to_id(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value < len(names):
                return value
        elif str(value) in ids:
            return ids[str(value)]
        raise errors.DatasetInvalid(
            f"label {value!r} is not one of the {len(names)} labels ({', '.join(names[:20])}); "
            "fix the record or list every class in spec.dataset.labels"
        )

    return to_id


class Encoder:
    """Batched encoders for every shape, sharing the tokenizer, the field names and maxLength."""

    def __init__(
        self,
        tokenizer: Any,
        fields: dict[str, str],
        *,
        max_length: int,
        labels: Sequence[str] | None = None,
    ) -> None:
        self.tok = tokenizer
        self.f = fields
        self.max_length = max_length
        self.to_id = label_mapper(labels) if labels is not None else None

    def for_shape(self, shape: str) -> Callable[[Batch], Batch]:
        return getattr(self, shape)  # type: ignore[no-any-return]

    def lengths_for_shape(self, shape: str) -> Callable[[Batch], Batch]:
        """A batched map giving `length`: each record's token count before truncation at maxLength.

        The longest sequence the shape's encoder truncates (for seq2seq and pairs, the longer of the two).
        """

        def count(*texts: Any, **kwargs: Any) -> list[int]:
            return [len(ids) for ids in self.tok(*texts, **kwargs)["input_ids"]]

        def lengths(batch: Batch) -> Batch:
            f = self.f
            if shape == "text":
                out = [len(self._with_eos(x)) for x in self.tok(batch[f["text"]], add_special_tokens=True)["input_ids"]]
            elif shape == "prompt_completion":
                prompts = count(batch[f["prompt"]], add_special_tokens=True)
                completions = self.tok(batch[f["completion"]], add_special_tokens=False)["input_ids"]
                out = [p + len(self._with_eos(c)) for p, c in zip(prompts, completions, strict=True)]
            elif shape == "chat":
                rendered = [self.render(_check_messages(m)) for m in batch[f["messages"]]]
                out = count(rendered, add_special_tokens=False)
            elif shape in ("seq2seq", "pairs"):
                first, second = ("prompt", "completion") if shape == "seq2seq" else ("text", "pair")
                out = [max(a, b) for a, b in zip(count(batch[f[first]]), count(batch[f[second]]), strict=True)]
            elif shape == "classification":
                out = count(batch[f["text"]])
            elif shape == "token_classification":
                out = count(batch[f["tokens"]], is_split_into_words=True)
            else:
                out = count(batch[f["question"]], batch[f["context"]])
            return {"length": out}

        return lengths

    # ------------------------------------------------------------------ causal language modelling

    def text(self, batch: Batch) -> Batch:
        enc = self.tok(batch[self.f["text"]], add_special_tokens=True)["input_ids"]
        ids = [self._with_eos(x)[: self.max_length] for x in enc]
        return {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids], "labels": [list(x) for x in ids]}

    def prompt_completion(self, batch: Batch) -> Batch:
        prompts = self.tok(batch[self.f["prompt"]], add_special_tokens=True)["input_ids"]
        completions = self.tok(batch[self.f["completion"]], add_special_tokens=False)["input_ids"]
        out: Batch = {"input_ids": [], "attention_mask": [], "labels": []}
        for p, c in zip(prompts, completions, strict=True):
            c = self._with_eos(c)
            ids = (p + c)[: self.max_length]
            labels = ([IGNORE] * len(p) + c)[: self.max_length]
            out["input_ids"].append(ids)
            out["attention_mask"].append([1] * len(ids))
            out["labels"].append(labels)
        return out

    def chat(self, batch: Batch) -> Batch:
        out: Batch = {"input_ids": [], "attention_mask": [], "labels": []}
        for messages in batch[self.f["messages"]]:
            ids, labels = self._chat_example(_check_messages(messages))
            out["input_ids"].append(ids)
            out["attention_mask"].append([1] * len(ids))
            out["labels"].append(labels)
        return out

    def _chat_example(self, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
        """Token ids of the templated chat; loss on the assistant turns when their spans can be found."""
        text = self.render(messages)
        enc = self.tok(
            text, add_special_tokens=False, truncation=True, max_length=self.max_length, return_offsets_mapping=True
        )
        ids = list(enc["input_ids"])
        spans = self._assistant_spans(messages, text)
        if not spans:
            return ids, list(ids)
        labels = [
            tok if any(s <= start < e for s, e in spans) else IGNORE
            for tok, (start, _) in zip(ids, enc["offset_mapping"], strict=True)
        ]
        return ids, labels

    def render(self, messages: list[dict[str, str]], *, generation_prompt: bool = False) -> str:
        return str(self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt))

    def _assistant_spans(self, messages: list[dict[str, str]], text: str) -> list[tuple[int, int]]:
        """Character spans of assistant replies, found by rendering growing prefixes of the chat.

        Works for every template that renders a prefix of a chat as a prefix of its text; for the
        others (an empty result) the loss covers the whole chat.
        """
        spans = []
        try:
            for i, message in enumerate(messages):
                if message["role"] != "assistant":
                    continue
                before = self.render(messages[:i], generation_prompt=True) if i else ""
                through = self.render(messages[: i + 1])
                if not (text.startswith(before) and text.startswith(through)):
                    return []
                spans.append((len(before), len(through)))
        except Exception:
            # Some templates reject partial chats (e.g. not ending on a user turn): loss on everything.
            return []
        return spans

    def _with_eos(self, ids: list[int]) -> list[int]:
        eos = self.tok.eos_token_id
        return [*list(ids), eos] if eos is not None and (not ids or ids[-1] != eos) else list(ids)

    # --------------------------------------------------------------------- sequence to sequence

    def seq2seq(self, batch: Batch) -> Batch:
        enc = self.tok(batch[self.f["prompt"]], truncation=True, max_length=self.max_length)
        targets = self.tok(batch[self.f["completion"]], truncation=True, max_length=self.max_length)
        out = {k: list(v) for k, v in enc.items()}
        out["labels"] = list(targets["input_ids"])
        return out

    # ----------------------------------------------------------------------------- classification

    def classification(self, batch: Batch) -> Batch:
        assert self.to_id is not None
        enc = self.tok(batch[self.f["text"]], truncation=True, max_length=self.max_length)
        out = {k: list(v) for k, v in enc.items()}
        out["labels"] = [self.to_id(v) for v in batch[self.f["label"]]]
        return out

    def token_classification(self, batch: Batch) -> Batch:
        assert self.to_id is not None
        words, tags = batch[self.f["tokens"]], batch[self.f["tags"]]
        for i, (w, t) in enumerate(zip(words, tags, strict=True)):
            if not isinstance(w, list) or not isinstance(t, list) or len(w) != len(t):
                raise errors.DatasetInvalid(
                    f"record {i}: `{self.f['tokens']}` and `{self.f['tags']}` must be lists of the same length"
                )
        enc = self.tok(words, is_split_into_words=True, truncation=True, max_length=self.max_length)
        out = {k: list(v) for k, v in enc.items()}
        out["labels"] = [align_word_labels(enc.word_ids(i), [self.to_id(x) for x in t]) for i, t in enumerate(tags)]
        return out

    # ------------------------------------------------------------------------- question answering

    def question_answering(self, batch: Batch) -> Batch:
        questions, contexts = batch[self.f["question"]], batch[self.f["context"]]
        enc = self.tok(
            questions,
            contexts,
            truncation="only_second",
            max_length=self.max_length,
            return_offsets_mapping=True,
        )
        starts, ends = [], []
        for i, (context, answer) in enumerate(zip(contexts, batch[self.f["answer"]], strict=True)):
            char_start, char_end = answer_span(context, answer, record=i)
            s, e = token_span(enc["offset_mapping"][i], enc.sequence_ids(i), char_start, char_end)
            starts.append(s)
            ends.append(e)
        out = {k: list(v) for k, v in enc.items() if k != "offset_mapping"}
        out["start_positions"] = starts
        out["end_positions"] = ends
        return out

    # --------------------------------------------------------------------------------- embeddings

    def pairs(self, batch: Batch) -> Batch:
        anchors = self.tok(batch[self.f["text"]], truncation=True, max_length=self.max_length)
        positives = self.tok(batch[self.f["pair"]], truncation=True, max_length=self.max_length)
        out = {k: list(v) for k, v in anchors.items()}
        out.update({f"pair_{k}": list(v) for k, v in positives.items()})
        return out


def align_word_labels(word_ids: Sequence[int | None], word_labels: Sequence[int]) -> list[int]:
    """One label per token: the word's label on its first subword, IGNORE on the rest and on specials."""
    labels, previous = [], None
    for word in word_ids:
        labels.append(IGNORE if word is None or word == previous else word_labels[word])
        previous = word
    return labels


def answer_span(context: str, answer: Any, *, record: int) -> tuple[int, int]:
    """Character span of the answer in the context, from {text, start} (start checked, else searched)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
        raise errors.DatasetInvalid(f"record {record}: the answer must be an object {{text, start}}, got {answer!r}")
    text = answer["text"]
    start = answer.get("start", answer.get("answer_start"))
    if isinstance(start, int) and context[start : start + len(text)] == text:
        return start, start + len(text)
    found = context.find(text)
    if found < 0:
        raise errors.DatasetInvalid(f"record {record}: answer {text!r} does not occur in its context")
    return found, found + len(text)


def token_span(
    offsets: Sequence[tuple[int, int]], sequence_ids: Sequence[int | None], char_start: int, char_end: int
) -> tuple[int, int]:
    """First and last context token covering [char_start, char_end); (0, 0) when truncation cut the answer."""
    context = [i for i, seq in enumerate(sequence_ids) if seq == 1 and offsets[i][0] != offsets[i][1]]
    if not context or offsets[context[0]][0] > char_start or offsets[context[-1]][1] < char_end:
        return 0, 0
    start = next(i for i in context if offsets[i][1] > char_start)
    end = max(i for i in context if offsets[i][0] < char_end)
    return start, end


def _check_messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise errors.DatasetInvalid(f"a chat must be a non-empty list of {{role, content}}, got {messages!r:.200}")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise errors.DatasetInvalid(f"each chat message needs string `role` and `content`, got {m!r:.200}")
    return messages
