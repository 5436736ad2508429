"""Stage `personas`: embed profiles, cluster them, write persona cards and a map."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personasim.data.tables import read_parquet, write_parquet
from personasim.llm.registry import create_generator
from personasim.personas.assignment import PersonaModel
from personasim.personas.cards import (
    card_statistics,
    describe_request,
    distinguishing_features,
    nearest_members,
)
from personasim.personas.clustering import cluster, silhouette_of
from personasim.personas.embedding import embed_texts
from personasim.personas.features import FeatureSpace, taste_features, trait_features
from personasim.personas.outofcore import taste_features_out_of_core
from personasim.personas.plot import persona_map
from personasim.pipeline.ingest import IngestStage
from personasim.pipeline.profile import ProfileStage
from personasim.pipeline.stage import Stage
from personasim.profiles.cache import GenerationCache, cache_key
from personasim.profiles.distill import GenerationCounts, generate_checked
from personasim.profiles.quality import clean_rationale
from personasim.progress import progress
from personasim.run_folder import DATA, PERSONAS, PROFILES
from personasim.workspace import atomic_write_text

__all__ = ["PersonasStage", "persona_name"]

logger = logging.getLogger(__name__)


def _mean_or_nan(x: np.ndarray) -> np.ndarray:
    """Column means (NaN for a persona none of whose members is in a sampled block)."""
    return x.mean(axis=0) if len(x) else np.full(x.shape[1], np.nan)


def _features_label(weights: dict[str, float]) -> str:
    return " + ".join(f"{b} {w:g}" if w != 1 else b for b, w in weights.items() if w > 0)


def persona_name(index: int) -> str:
    """The name of the persona at `index` ("p0" is the largest)."""
    return f"p{index}"


class PersonasStage(Stage):
    """Group users into personas by clustering their profile embeddings."""

    name = "personas"
    folder = PERSONAS.stage.folder
    upstream = (IngestStage, ProfileStage)

    def settings(self) -> list[Any]:
        """`[personas]`, the LLM that describes them (if any) and the seed."""
        llm = self.config.llm.identity_settings() if self.config.personas.describe else None
        return [self.config.personas, llm, self.config.seed]

    def build(self, out: Path) -> dict[str, Any]:
        """Write assignments, centroids, the feature model, cards and the map."""
        cfg = self.config.personas
        profiles = read_parquet(self.workspace.require(PROFILES.profiles))
        ids = profiles["user_id"].astype(str).tolist()

        values, rows = self._feature_values(profiles, ids)
        space = FeatureSpace.fit(values, cfg.features)
        features = space.transform(values)
        with progress("clustering", total=None):
            result = cluster(
                features,
                k=cfg.k,
                k_min=cfg.k_min,
                k_max=cfg.k_max,
                min_size=cfg.min_size,
                n_init=cfg.n_init,
                seed=self.config.seed,
            )
        names = [persona_name(i) for i in range(result.k)]
        unit = space.unit(values)
        centroids = {}
        for block, x in unit.items():
            labels = result.labels[rows[block]] if block in rows else result.labels
            centroids[block] = np.stack([_mean_or_nan(x[labels == k]) for k in range(result.k)])
        model = PersonaModel(names, centroids, space, cfg.embedding_model, cfg.temperature)
        placed = model.assign_unit({b: unit[b] for b in space.weights})

        assignments = pd.DataFrame(
            {
                "user_id": ids,
                "persona": [names[i] for i in result.labels],
                "distance": placed.distances[np.arange(len(ids)), result.labels],
                "membership": list(placed.membership.round(6)),
            }
        )
        write_parquet(assignments, PERSONAS.assignments.under(out))
        write_parquet(
            pd.DataFrame(
                {
                    "persona": names,
                    **{f"centroid_{b}": list(c) for b, c in centroids.items()},
                }
            ),
            PERSONAS.centroids.under(out),
        )
        atomic_write_text(
            PERSONAS.model.under(out),
            json.dumps(
                {
                    "names": names,
                    "space": space.to_dict(),
                    "embedding_model": cfg.embedding_model,
                    "temperature": cfg.temperature,
                    "features": cfg.features,
                },
                indent=2,
            ),
        )

        cards, counts = self._cards(profiles, features, result, names, ids, values["taste"])
        atomic_write_text(PERSONAS.cards.under(out), json.dumps(cards, indent=2) + "\n")
        final_silhouette = silhouette_of(features, result.labels)
        variance = persona_map(
            features,
            result.labels,
            result.centroids,
            names,
            PERSONAS.map.under(out),
            title=f"{len(ids)} users, {result.k} personas ({_features_label(cfg.features)})",
        )
        selection = {
            "k_tried": sorted(result.inertia),
            "inertia": {str(k): round(v, 4) for k, v in sorted(result.inertia.items())},
            "silhouette": {
                str(k): (None if v is None else round(v, 4))
                for k, v in sorted(result.silhouette.items())
            },
            "k_chosen": result.k_chosen,
            "method": "fixed" if cfg.k else "elbow (kneedle on inertia)",
        }
        atomic_write_text(PERSONAS.k_selection.under(out), json.dumps(selection, indent=2) + "\n")
        return {
            "users": len(ids),
            "k": result.k,
            "k_chosen": result.k_chosen,
            "sizes": dict(zip(names, result.sizes, strict=True)),
            "merged_sizes": result.merged,
            "silhouette": None if final_silhouette is None else round(final_silhouette, 4),
            "selection": selection,
            "features": cfg.features,
            "map_variance": {k: round(v, 4) for k, v in variance.items()},
            "mean_max_membership": round(float(placed.membership.max(axis=1).mean()), 4),
            "descriptions": counts.as_dict() if counts else None,
        }

    def _taste(self) -> pd.DataFrame:
        """Taste features of the users with train ratings: in memory, or out of core
        (DuckDB) with `scale.tables = "duckdb"`."""
        interactions = self.workspace.require(DATA.interactions)
        items = self.workspace.require(DATA.items)
        if self.config.scale.tables == "duckdb":
            with self.scratch() as scratch:
                return taste_features_out_of_core(
                    interactions, items, scale=self.config.scale, scratch=scratch
                )
        log = read_parquet(interactions)
        return taste_features(log[log["split"] == "train"], read_parquet(items))

    def _feature_values(
        self, profiles: pd.DataFrame, ids: list[str]
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Every feature block of the profiled users, rows in `ids` order, and the rows of
        the blocks computed for a sample of them: the embedding, when it is not clustered
        on and there are more than `embedding_sample` users (it then only places users
        known by a profile text alone, and a sample's mean per persona does that)."""
        cfg = self.config.personas
        with progress("taste features", total=None):
            taste = self._taste().reindex(pd.Index(ids, name="user_id"))
        rows: dict[str, np.ndarray] = {}
        embed = np.arange(len(ids))
        if not cfg.features.get("embedding") and 0 < cfg.embedding_sample < len(ids):
            rng = np.random.default_rng(self.config.seed)
            embed = np.sort(rng.choice(len(ids), cfg.embedding_sample, replace=False))
            rows["embedding"] = embed
        texts = profiles["profile_text"].to_numpy()[embed].tolist()
        with progress("embedding profiles", total=None):
            embedding = embed_texts(texts, cfg.embedding_model)
        values = {"taste": taste, "traits": trait_features(profiles), "embedding": embedding}
        return values, rows

    def _cards(
        self,
        profiles: pd.DataFrame,
        features: np.ndarray,
        result: Any,
        names: list[str],
        ids: list[str],
        taste: pd.DataFrame,
    ) -> tuple[list[dict[str, Any]], GenerationCounts | None]:
        cfg = self.config.personas
        facts_column = "taste_facts" if "taste_facts" in profiles else "profile_text"
        facts = dict(zip(ids, profiles[facts_column].astype(str), strict=True))
        cards = []
        for k, name in enumerate(names):
            mask = result.labels == k
            member_ids = [ids[i] for i in np.flatnonzero(mask)]
            nearest = nearest_members(
                features[mask], result.centroids[k], member_ids, cfg.nearest_users
            )
            card = card_statistics(
                name,
                profiles[mask],
                taste[mask],
                nearest,
                len(ids),
                rating_high=self.config.data.rating_scale[1],
            )
            card["distinguishing"] = distinguishing_features(taste[mask], taste)
            cards.append(card)
        if not cfg.describe:
            return cards, None
        counts = GenerationCounts()
        generator = create_generator(self.config.llm)
        cache = GenerationCache(self.workspace.root / ".cache" / "generations.sqlite")
        try:
            requests, keys = [], []
            for card in cards:
                member_facts = [facts[u] for u in card["nearest_users"]]
                key = cache_key(
                    "persona", generator.identity(), member_facts, cfg.description_max_tokens
                )
                requests.append(
                    describe_request(
                        card,
                        member_facts,
                        cfg.description_max_tokens,
                        seed=self.config.seed + len(requests),
                    )
                )
                keys.append(key)
            cached = cache.get_many(keys)
            pending = [i for i, key in enumerate(keys) if key not in cached]
            counts.requested, counts.cached = len(keys), len(keys) - len(pending)
            if pending:
                texts = generate_checked(
                    generator,
                    [requests[i] for i in pending],
                    [requests[i].prompt_text() for i in pending],
                    clean_rationale,
                    counts,
                    retry=self.config.profile.retry_degenerate,
                )
                fresh = {keys[i]: t for i, t in zip(pending, texts, strict=True)}
                cache.put_many(fresh)
                cached.update(fresh)
        finally:
            generator.close()
            cache.close()
        for card, key in zip(cards, keys, strict=True):
            card["description"] = cached[key]
        return cards, counts
