"""Stage `report`: the fidelity report as one HTML file and a Markdown summary.

Reads ``eval/`` (and the persona cards and map, and ``simulate/``, when those stages
ran) and writes
``report/report.html`` (self-contained: figures inlined, no network at view time) and
``report/summary.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from personasim.evaluation.report import render_html, render_markdown
from personasim.evaluation.report_data import collect_report
from personasim.pipeline.evaluate import EvaluateStage
from personasim.pipeline.stage import Stage
from personasim.run_folder import REPORT
from personasim.workspace import atomic_write_text

__all__ = ["ReportStage"]


class ReportStage(Stage):
    """Render the evaluation of a run folder."""

    name = "report"
    folder = REPORT.stage.folder
    upstream = (EvaluateStage,)

    def upstream_stages(self) -> tuple[type[Stage], ...]:
        """Evaluate, plus personas and simulate when they ran (shown too)."""
        from personasim.pipeline.personas import PersonasStage
        from personasim.pipeline.simulate import SimulateStage

        stages: tuple[type[Stage], ...] = (EvaluateStage,)
        for optional in (PersonasStage, SimulateStage):
            if self.workspace.read_manifest(optional.folder) is not None:
                stages += (optional,)
        return stages

    def settings(self) -> list[Any]:
        """The `[report]` section."""
        return [self.config.report]

    def build(self, out: Path) -> dict[str, Any]:
        """Write report.html and summary.md."""
        data = collect_report(self.workspace, self.config.report.title)
        atomic_write_text(REPORT.html.under(out), render_html(data))
        atomic_write_text(REPORT.markdown.under(out), render_markdown(data))
        return {
            "html": str(self.workspace.path(REPORT.html)),
            "models": len(data.metrics),
            "taste_lists": len(data.taste),
        }
