"""Loading a run folder's agents: checking its artifacts and adapters, then reading them.

:func:`load_agents` reads everything :class:`~personasim.agents.agent.UserAgent` is built
from (its :meth:`~personasim.agents.agent.UserAgent.from_workdir` calls it): the
profiles, personas and catalogue, the base model with the modes' adapters attached, the
CF and watch priors, the rationale index and the fitted LM weights. Artifacts that no
longer match their manifest, and adapters that are not safetensors or were trained on
other base weights, are refused first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from personasim.agents.adapters import (
    GLOBAL_ADAPTER,
    adapter_base,
    adapter_folders,
    fitted_lm_weights,
)
from personasim.agents.examples import item_records
from personasim.agents.lm import AgentLM
from personasim.agents.prior import CFPrior
from personasim.agents.prompts import agent_profiles, recent_items
from personasim.agents.retrieval import RationaleIndex
from personasim.agents.watch_prior import WatchPrior
from personasim.config import RunConfig
from personasim.data.tables import read_parquet
from personasim.errors import ConfigError, StageError
from personasim.run_folder import ADAPTERS, DATA, PERSONAS, PROFILES, StageFolder

if TYPE_CHECKING:
    from personasim.agents.agent import AgentMode

__all__ = ["LoadedAgents", "load_agents", "verify_artifacts"]


@dataclass
class LoadedAgents:
    """What a run folder's agents are built from (:func:`load_agents`).

    Attributes:
        lm: The base model, every loaded mode's adapters attached.
        config: The run's settings (with the dtype asked for).
        profiles: Each user's profile text (with its recent titles when configured).
        personas: Each user's persona (empty unless "persona" mode is loaded).
        items: The catalogue's item records, by id.
        prior: The CF rating prior (None when unused or the log has no ratings).
        index: The rationale index (None unless ``agents.use_rationales``).
        watch_prior: The watch prior (None when it was not fitted).
        lm_weights: Each loaded adapter's fitted rating LM weight.
        watch_lm_weights: Each loaded adapter's fitted watch LM weight.
    """

    lm: AgentLM
    config: RunConfig
    profiles: dict[str, str]
    personas: dict[str, str]
    items: dict[str, dict[str, Any]]
    prior: CFPrior | None
    index: RationaleIndex | None
    watch_prior: WatchPrior | None
    lm_weights: dict[str, float]
    watch_lm_weights: dict[str, float]


def load_agents(
    workdir: str | Path, modes: Sequence[AgentMode], *, dtype: str | None = None
) -> LoadedAgents:
    """Read the agents of a run folder in every mode of `modes`.

    Args:
        workdir: The run folder (profile, personas and train must have run; "none"
            needs only profile).
        modes: The modes to load, without repeats (their adapters share one model).
        dtype: "float32" or "bfloat16" instead of the run's `agents.dtype`.

    Raises:
        StageError: A needed stage has not run.
        ConfigError: A mode's adapters were not trained.
    """
    from personasim.workspace import Workspace, resolve_config

    ws = Workspace(workdir)
    config = resolve_config(ws)
    if dtype is not None:
        agents = config.agents.model_copy(update={"dtype": dtype})
        config = config.model_copy(update={"agents": agents})
    modes = list(modes)
    stages = [PROFILES.stage] + ([PERSONAS.stage] if "persona" in modes else [])
    stages += [ADAPTERS.stage] if modes != ["none"] else []
    verify_artifacts(ws, stages)
    profiles = read_parquet(ws.require(PROFILES.profiles))
    items = item_records(read_parquet(ws.require(DATA.items)))
    personas: dict[str, str] = {}
    if "persona" in modes:
        assignments = read_parquet(ws.require(PERSONAS.assignments))
        personas = dict(
            zip(assignments["user_id"].astype(str), assignments["persona"], strict=True)
        )
    chosen: dict[str, Path] = {}
    for m in modes:
        if m == "none":
            continue
        folders = adapter_folders(ws.root)
        wanted = sorted(set(personas.values())) if m == "persona" else [GLOBAL_ADAPTER]
        missing = [name for name in wanted if name not in folders]
        if missing and config.agents.language_model == "off":
            raise ConfigError(
                f"agents.language_model is 'off' in {ws.root}: no adapter was trained; "
                "the agents answer from their priors (personasim.agents.prior_agents."
                "PriorAgents), or set it to 'auto' and rerun `personasim train`"
            )
        if missing:
            raise ConfigError(
                f"no trained adapter {', '.join(missing)} in {ws.stage_dir(ADAPTERS.stage)}: "
                f"train mode {m!r} (agents.modes) and rerun `personasim train`"
            )
        chosen.update({name: folders[name] for name in wanted})
    if chosen:
        _check_adapters(chosen, base=AgentLM.portable_base(config.agents))
    lm = AgentLM.load(config.agents, config.data.scale)
    prior = None
    watch_prior = None
    if chosen:
        lm.model = _load_adapters(lm.model, chosen)
        if config.agents.prior != "none" and not config.data.implicit:
            prior = CFPrior.load(ws.stage_dir(ADAPTERS.stage))
        if ws.path(ADAPTERS.watch_prior).is_file():
            watch_prior = WatchPrior.load(ws.stage_dir(ADAPTERS.stage))
    elif config.agents.prior != "none" and "prompt" in config.agents.prior:
        try:
            prior = CFPrior.load(ws.stage_dir(ADAPTERS.stage))
        except FileNotFoundError:
            raise StageError(
                "the prompt shows the CF prior: run `personasim train` first"
            ) from None
    index = None
    if config.agents.use_rationales:
        rationales = read_parquet(ws.require(PROFILES.rationales))
        index = RationaleIndex.load(
            ws.stage_dir(ADAPTERS.stage), rationales, items, scale=config.data.scale
        )
    recent = {}
    if config.agents.recent_titles:
        log = read_parquet(ws.require(DATA.interactions))
        recent = recent_items(log[log["split"] == "train"], config.agents.recent_titles)
    texts = agent_profiles(profiles, recent, items)
    trained = ((ws.read_manifest(ADAPTERS.stage) or {}).get("summary") or {}).get("adapters", {})
    weights, watch_weights = fitted_lm_weights(trained, chosen)
    return LoadedAgents(
        lm, config, texts, personas, items, prior, index, watch_prior, weights, watch_weights
    )


def verify_artifacts(workspace: Any, stages: list[StageFolder]) -> None:
    """Refuse artifacts that no longer match their manifest (corrupted or truncated).

    Raises:
        StageError: Names the altered files and the command that rebuilds them.
    """
    for stage in stages:
        manifest = workspace.read_manifest(stage)
        if manifest is None:
            continue  # a missing stage is reported where its artifacts are read
        bad = workspace.verify_outputs(stage, manifest)
        if bad:
            shown = ", ".join(f"{stage.folder}/{name}" for name in bad[:3])
            raise StageError(
                f"{shown} {'does' if len(bad) == 1 else 'do'} not match the manifest's "
                f"hash (corrupted or truncated): rerun `personasim {stage.command} "
                f"--workdir {workspace.root}` to rebuild"
            )


def _check_adapters(folders: dict[str, Path], base: str) -> None:
    """Refuse adapter folders that are not safetensors or name another base than `base`
    (the portable name of the base weights to load; an adapter that names a local folder,
    as runs before portable names did, is taken as it is)."""
    for name in folders:  # safetensors only: a pickled adapter_model.bin is never read
        if not (folders[name] / "adapter_model.safetensors").is_file():
            raise StageError(
                f"{folders[name]} has no adapter_model.safetensors (only safetensors adapters "
                "are loaded): rerun `personasim train --force`"
            )
        recorded = adapter_base(folders[name])
        if recorded and recorded != base and not Path(recorded).is_absolute():
            raise ConfigError(
                f"the adapter {folders[name]} was trained on {recorded}, but agents.base_model "
                f"loads {base} here: install those weights or rerun `personasim train --force`"
            )


def _load_adapters(model: Any, folders: dict[str, Path]) -> Any:
    """Attach every adapter folder to the base model under its name."""
    from peft import PeftModel

    names = list(folders)
    peft_model = PeftModel.from_pretrained(
        model,
        str(folders[names[0]]),
        adapter_name=names[0],
        is_trainable=False,
    )
    for name in names[1:]:
        peft_model.load_adapter(str(folders[name]), adapter_name=name, is_trainable=False)
    peft_model.eval()
    return peft_model
