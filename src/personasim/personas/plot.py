"""A 2-D map of users coloured by persona (PCA), saved as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["MAP_POINTS", "persona_map"]

MAP_POINTS = 20_000
"""At most this many users are drawn (a seeded sample; the legend counts them all)."""


def persona_map(
    features: np.ndarray,
    labels: np.ndarray,
    centroids: np.ndarray,
    names: list[str],
    path: Path,
    title: str,
) -> dict[str, float]:
    """Project users and centroids on the first two principal components and draw them.

    Returns:
        The share of variance the two components explain.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=0).fit(features)
    drawn = np.arange(len(features))
    if len(drawn) > MAP_POINTS:
        drawn = np.sort(np.random.default_rng(0).choice(drawn, MAP_POINTS, replace=False))
    points = pca.transform(features[drawn])
    centres = pca.transform(centroids)
    fig, ax = plt.subplots(figsize=(7, 5.5), dpi=120)
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    for k, name in enumerate(names):
        mask = labels[drawn] == k
        ax.scatter(
            points[mask, 0],
            points[mask, 1],
            s=18 if len(drawn) < 2000 else 3,
            alpha=0.75,
            color=cmap(k % cmap.N),
            label=f"{name} ({int((labels == k).sum()):,} users)",
        )
        ax.scatter(
            centres[k, 0],
            centres[k, 1],
            s=220,
            marker="X",
            color=cmap(k % cmap.N),
            edgecolors="black",
            linewidths=1.2,
        )
    explained = pca.explained_variance_ratio_
    ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%} of variance)")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8, frameon=True)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return {"pc1": float(explained[0]), "pc2": float(explained[1])}
