"""Recommenders evaluated by simulated users: recommenders, sessions, measures."""

from personasim.simulation.lenskit_recommender import LensKitRecommender
from personasim.simulation.measures import (
    SIMULATED_METRICS,
    item_novelty,
    list_drift,
    offline_metrics,
    per_user_agreement,
    rank_agreement,
    session_metrics,
    user_session_metrics,
)
from personasim.simulation.recommenders import (
    BUILTIN_RECOMMENDERS,
    PluginRecommender,
    Recommender,
    create_recommender,
    load_object,
)
from personasim.simulation.sessions import (
    SessionLog,
    SimulatedUsers,
    continue_probability,
    pages_of,
    run_sessions,
)

__all__ = [
    "BUILTIN_RECOMMENDERS",
    "SIMULATED_METRICS",
    "LensKitRecommender",
    "PluginRecommender",
    "Recommender",
    "SessionLog",
    "SimulatedUsers",
    "continue_probability",
    "create_recommender",
    "item_novelty",
    "list_drift",
    "load_object",
    "offline_metrics",
    "pages_of",
    "per_user_agreement",
    "rank_agreement",
    "run_sessions",
    "session_metrics",
    "user_session_metrics",
]
