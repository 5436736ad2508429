"""Cleaning generated text and catching degenerate generations.

Small models fail in recognisable ways: they say nothing, loop on a phrase, or copy the
prompt back. :func:`degeneracy` names the failure so the caller can retry.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from difflib import SequenceMatcher

from personasim.profiles.prompts import INSTRUCTION_PHRASES

__all__ = ["clean_rationale", "clean_summary", "degeneracy"]

_LABEL = re.compile(
    r"^\s*(?:\*\*)?(?:updated |new |rewritten |the )?(?:profile|answer|summary|rationale|"
    r"reason|response)(?:\*\*)?\s*[:\-]\s*",
    re.I,
)
_WORD = re.compile(r"[\w']+")
_ECHO_WORDS = 10


def clean_summary(text: str, max_chars: int = 1200) -> str:
    """Strip labels, quotes and markdown; join lines; cap the length at a sentence end."""
    text = _LABEL.sub("", text.strip()).strip().strip('"').strip()
    text = re.sub(r"[*#`]+", "", text)
    text = " ".join(line.strip(" -\t") for line in text.splitlines() if line.strip())
    if len(text) > max_chars:
        cut = text[:max_chars]
        end = cut.rfind(". ")
        text = cut[: end + 1] if end > max_chars // 2 else cut.rstrip() + "..."
    return text


def clean_rationale(text: str, max_chars: int = 300) -> str:
    """The first sentence of a cleaned generation."""
    text = clean_summary(text, max_chars=max_chars * 2)
    match = re.search(r"(.{20,}?[.!?])(\s|$)", text)
    first = match.group(1) if match else text
    return first[:max_chars].strip()


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def degeneracy(text: str, prompt: str = "", titles: Sequence[str] = ()) -> str | None:
    """Why a generation is unusable, or None when it looks fine.

    Args:
        text: The cleaned generation.
        prompt: The part of the prompt that must not be copied back.
        titles: Titles listed in the prompt; naming three or more of them is copying
            the list, not summarising it.

    Returns:
        "empty" (no words), "repetition" (a loop: a four-word phrase three times, or
        few distinct words), or "prompt echo" (the instructions, a run of 10
        or more words from the prompt, or the prompt's list of titles).
    """
    words = _words(text)
    if len(words) < 3:
        return "empty"
    if len(words) >= 12:
        fourgrams = Counter(zip(words, words[1:], words[2:], words[3:], strict=False))
        if fourgrams and fourgrams.most_common(1)[0][1] >= 3:
            return "repetition"  # a four-word phrase three times: a loop
        if len(set(words)) / len(words) < 0.35:
            return "repetition"
    lowered = text.lower()
    if any(phrase in lowered for phrase in INSTRUCTION_PHRASES):
        return "prompt echo"
    if titles and sum(1 for t in set(titles) if t and t.lower() in lowered) >= 3:
        return "prompt echo"
    if prompt:
        prompt_words = _words(prompt)
        match = SequenceMatcher(None, prompt_words, words, autojunk=False).find_longest_match(
            0, len(prompt_words), 0, len(words)
        )
        if match.size >= _ECHO_WORDS:
            return "prompt echo"
    return None
