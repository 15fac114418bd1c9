"""Synthetic, deterministic datasets for the trainer tests, one generator per record shape.

Every generator takes a seed and a count and returns plain dicts; :func:`write` stores them as
jsonl, json, csv or parquet.
"""

from __future__ import annotations

import json
import pathlib
import random
from collections.abc import Sequence
from typing import Any

import pyarrow
import pyarrow.parquet

CITIES = {"france": "paris", "england": "london", "germany": "berlin", "japan": "tokyo", "italy": "rome"}

TOPICS = {
    "sports": [
        "the striker scored a late goal in the final match",
        "our team won the championship after extra time",
        "the tennis player served an ace on match point",
        "fans cheered as the runner crossed the finish line",
        "the coach picked a new goalkeeper for the league game",
        "she swam four laps and broke the club record",
    ],
    "food": [
        "the soup needs more salt and a little pepper",
        "we baked fresh bread with butter and honey",
        "the chef grilled the fish with lemon and garlic",
        "this pasta sauce tastes of tomato and basil",
        "dessert was a warm apple pie with cream",
        "he chopped onions and fried them in olive oil",
    ],
    "weather": [
        "heavy rain and strong wind are expected tonight",
        "the forecast says sunny skies and warm afternoons",
        "snow fell all morning and the roads froze",
        "a thunderstorm rolled over the hills at noon",
        "fog covered the valley until the clouds lifted",
        "the temperature dropped below zero after sunset",
    ],
    "technology": [
        "the new laptop has a faster chip and more memory",
        "engineers released a software update for the phone",
        "the server crashed after the database ran out of disk",
        "she wrote a program that compiles in seconds",
        "the network router needs a firmware upgrade",
        "our robot uses a camera and a small processor",
    ],
}
FILLERS = ["honestly", "today", "again", "yesterday", "as usual", "by the way", "they said", "once more"]


def topic_sentences(n: int, *, seed: int) -> list[dict[str, Any]]:
    """SEQ_CLS: a sentence about one of four topics, reworded by shuffling clauses and fillers."""
    rng = random.Random(seed)
    out = []
    labels = sorted(TOPICS)
    for i in range(n):
        label = labels[i % len(labels)]
        words = rng.choice(TOPICS[label]).split()
        cut = rng.randrange(2, len(words) - 1)
        other = rng.choice(TOPICS[label]).split()
        start = rng.randrange(0, len(other) - 3)
        parts = [*words[:cut], rng.choice(FILLERS), *words[cut:], "and", *other[start : start + 3]]
        out.append({"text": " ".join(parts), "label": label})
    rng.shuffle(out)
    return out


def capital_chats(n: int, *, seed: int) -> list[dict[str, Any]]:
    """CAUSAL_LM chat: ask for a capital, get it."""
    rng = random.Random(seed)
    countries = sorted(CITIES)
    out = []
    for _ in range(n):
        country = rng.choice(countries)
        out.append(
            {
                "messages": [
                    {"role": "user", "content": f"what is the capital of {country}?"},
                    {"role": "assistant", "content": f"the capital of {country} is {CITIES[country]}."},
                ]
            }
        )
    return out


def all_shapes(n: int, *, seed: int) -> list[dict[str, Any]]:
    """Records carrying every field any task reads, so one file serves the whole method x task matrix."""
    rng = random.Random(seed)
    countries = sorted(CITIES)
    out = []
    for i in range(n):
        country = rng.choice(countries)
        city = CITIES[country]
        context = f"people say {city} is the capital of {country} today"
        out.append(
            {
                "text": f"the capital of {country} is {city}",
                "prompt": f"capital of {country}?",
                "completion": city,
                "label": "europe" if country != "japan" else "asia",
                "tokens": ["i", "visited", city, "in", country],
                "tags": ["O", "O", "CITY", "O", "COUNTRY"],
                "question": f"what is the capital of {country}?",
                "context": context,
                "answer": {"text": city, "start": context.index(city)},
                "pair": f"{city} is in {country}",
                "messages": [
                    {"role": "user", "content": f"capital of {country}?"},
                    {"role": "assistant", "content": city},
                ],
                "id": i,
            }
        )
    return out


def write(path: pathlib.Path, rows: Sequence[dict[str, Any]], *, fmt: str = "jsonl") -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "json":
        path.write_text(json.dumps(list(rows)))
    elif fmt == "parquet":
        pyarrow.parquet.write_table(pyarrow.Table.from_pylist(list(rows)), path)
    elif fmt == "csv":
        columns = list(rows[0])
        lines = [",".join(columns)] + [",".join(str(r[c]) for c in columns) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    else:
        raise ValueError(fmt)
    return path
