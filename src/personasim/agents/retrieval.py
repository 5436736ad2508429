"""RAFT retrieval: the user's single past rationale most similar to a target item.

Rationales and item descriptions are embedded with the same MiniLM as the personas.
Only train-part rationales exist, and the target item's own rationale is never
retrieved (that would leak the answer into the prompt).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personasim.agents.prompts import item_description
from personasim.personas.embedding import embed_texts
from personasim.profiles.prompts import item_line
from personasim.rating_scale import RatingScale
from personasim.run_folder import ADAPTERS

__all__ = ["RationaleIndex", "rationale_text"]

logger = logging.getLogger(__name__)


def rationale_text(
    item: Mapping[str, Any], rating: float, rationale: str, scale: RatingScale | None = None
) -> str:
    """How a retrieved rationale reads in a prompt: the item, the rating (on `scale`,
    1-5 when None), the reason."""
    return f"you rated {item_line(item)} {(scale or RatingScale()).out_of(rating)}. {rationale}"


class RationaleIndex:
    """Per user, the embeddings of their train rationales.

    Args:
        rationales: ``user_id, item_id, rating, rationale``.
        items: Item metadata keyed by ``item_id`` (dicts as the prompts use them).
        embedding_model: The sentence embedding model.
        scale: The rating scale the shown ratings are on (1-5 when None).
    """

    def __init__(
        self,
        rationales: pd.DataFrame,
        items: Mapping[str, Mapping[str, Any]],
        embedding_model: str = "minilm",
        *,
        vectors: np.ndarray | None = None,
        item_vectors: Mapping[str, np.ndarray] | None = None,
        scale: RatingScale | None = None,
    ) -> None:
        self.items = items
        self.embedding_model = embedding_model
        frame = rationales.reset_index(drop=True)
        texts = _rationale_texts(frame, items)
        if vectors is None:
            vectors = (
                embed_texts(texts, embedding_model) if texts else np.zeros((0, 384), "float32")
            )
        self.vectors = vectors
        self.digest = _digest(embedding_model, texts)
        self._by_user: dict[str, tuple[np.ndarray, list[str], list[str]]] = {}
        for user, idx in frame.groupby("user_id").indices.items():
            shown = [
                rationale_text(items[i], float(r), t, scale)
                for i, r, t in zip(
                    frame["item_id"].to_numpy()[idx],
                    frame["rating"].to_numpy()[idx],
                    frame["rationale"].to_numpy()[idx],
                    strict=True,
                )
            ]
            self._by_user[str(user)] = (
                vectors[idx],
                frame["item_id"].to_numpy()[idx].tolist(),
                shown,
            )
        self._item_vectors: dict[str, np.ndarray] = dict(item_vectors or {})

    def save(self, folder: Path) -> None:
        """Store the embeddings (rationales, every item) in `folder`, so that loading the
        agents does not embed them again (:meth:`load`)."""
        self._item_vectors_for(list(self.items))
        ids = list(self._item_vectors)
        if not ids:
            return
        np.savez(
            ADAPTERS.rationale_index.under(folder),
            digest=np.array(self.digest),
            vectors=self.vectors.astype("float32"),
            item_ids=np.array(ids, dtype=object).astype(str),
            item_vectors=np.stack([self._item_vectors[i] for i in ids]).astype("float32"),
            item_digest=np.array(_digest(self.embedding_model, _item_texts(self.items, ids))),
        )

    @classmethod
    def load(
        cls,
        folder: Path,
        rationales: pd.DataFrame,
        items: Mapping[str, Mapping[str, Any]],
        embedding_model: str = "minilm",
        scale: RatingScale | None = None,
    ) -> RationaleIndex:
        """The index of `rationales`, with the embeddings :meth:`save` stored in `folder`
        when they are of these very texts (else embedded again)."""
        path = ADAPTERS.rationale_index.under(folder)
        if path.is_file():
            stored = np.load(path, allow_pickle=False)
            frame = rationales.reset_index(drop=True)
            texts = _rationale_texts(frame, items)
            if str(stored["digest"]) == _digest(embedding_model, texts):
                ids = [str(i) for i in stored["item_ids"]]
                known = [i for i in ids if i in items]
                item_vectors = {}
                if len(known) == len(ids) and str(stored["item_digest"]) == _digest(
                    embedding_model, _item_texts(items, ids)
                ):
                    item_vectors = dict(zip(ids, stored["item_vectors"], strict=True))
                return cls(
                    frame,
                    items,
                    embedding_model,
                    vectors=stored["vectors"],
                    item_vectors=item_vectors,
                    scale=scale,
                )
            logger.info("%s is not of these rationales: embedding them again", path)
        return cls(rationales, items, embedding_model, scale=scale)

    def forget_item(self, item_id: str) -> None:
        """Drop an item's embedding (a described item the service forgets)."""
        self._item_vectors.pop(item_id, None)

    def _item_vectors_for(self, item_ids: list[str]) -> np.ndarray:
        missing = [i for i in dict.fromkeys(item_ids) if i not in self._item_vectors]
        if missing:
            vectors = embed_texts(_item_texts(self.items, missing), self.embedding_model)
            self._item_vectors.update(zip(missing, vectors, strict=True))
        return np.stack([self._item_vectors[i] for i in item_ids])

    def most_similar(self, user: str, item_ids: list[str]) -> list[str | None]:
        """For each target item, the user's most similar rationale (never its own)."""
        entry = self._by_user.get(user)
        if entry is None or not item_ids:
            return [None] * len(item_ids)
        vectors, own_items, shown = entry
        similarity = self._item_vectors_for(item_ids) @ vectors.T
        position = {item: k for k, item in enumerate(own_items)}
        out: list[str | None] = []
        for row, target in enumerate(item_ids):
            scores = similarity[row].copy()
            if target in position:
                scores[position[target]] = -np.inf
            best = int(np.argmax(scores))
            out.append(shown[best] if np.isfinite(scores[best]) else None)
        return out


def _rationale_texts(frame: pd.DataFrame, items: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What is embedded of each rationale: its item and its text."""
    return [
        f"{item_line(items[i])}. {r}"
        for i, r in zip(frame["item_id"], frame["rationale"], strict=True)
    ]


def _item_texts(items: Mapping[str, Mapping[str, Any]], ids: Sequence[str]) -> list[str]:
    return [item_description(items[i]) for i in ids]


def _digest(model: str, texts: Sequence[str]) -> str:
    digest = hashlib.sha256(model.encode())
    for text in texts:
        digest.update(b"\0" + text.encode())
    return digest.hexdigest()
