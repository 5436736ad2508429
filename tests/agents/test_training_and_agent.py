"""Training is correct and resumable; the agents answer, batch across personas exactly,
and appear in the evaluation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import logit

from personasim import UserAgent, run_pipeline
from personasim.agents.adapters import lora_config
from personasim.agents.answers import answer_distribution, with_prior, with_watch_prior
from personasim.agents.lm import AgentLM
from personasim.agents.objective import batch_loss, make_packs
from personasim.agents.packing import collate
from personasim.agents.prior import CFPrior, prior_logits
from personasim.agents.training import train_adapter
from personasim.errors import ConfigError
from personasim.pipeline import EvaluateStage, IngestStage, PersonasStage, ProfileStage, TrainStage
from personasim.testing import TINY_SHAPE

AGENT_STAGES = (IngestStage, ProfileStage, PersonasStage, TrainStage)

pytestmark = pytest.mark.slow

LAYERS = TINY_SHAPE["num_hidden_layers"]


@pytest.fixture(scope="module")
def peft_lm(trained_run, tiny_model):
    from peft import get_peft_model

    from personasim.config import AgentConfig

    agents = AgentConfig(
        base_model=str(tiny_model), top_layers=6, items_per_pack=4, users_per_step=2, device="cpu"
    )
    lm = AgentLM.load(agents)
    lm.model = get_peft_model(lm.model, lora_config(agents, lm.n_layers))
    examples = pd.read_parquet(trained_run / "adapters" / "examples.parquet")
    profiles = pd.read_parquet(trained_run / "profiles" / "profiles.parquet")
    texts = dict(zip(profiles.user_id, profiles.profile_text, strict=True))
    small = examples.groupby("user_id").head(4).head(16)
    return lm, agents, make_packs(small, texts, lm, items_per_pack=4, adapter="default")


def test_cached_lower_layers_give_the_same_loss(peft_lm):
    lm, agents, packs = peft_lm
    batch = collate([p.pack for p in packs[:2]], lm.pad_id, lm.dtype, lm.device)
    split = lm.n_layers - agents.top_layers
    with torch.no_grad():
        full = batch_loss(lm, batch, lm.hidden(batch), packs[:2], agents)
        lower = lm.hidden(batch, 0, split)
        cached = batch_loss(
            lm, batch, lm.hidden(batch, split, None, hidden=lower), packs[:2], agents
        )
    assert float(full) == pytest.approx(float(cached), rel=1e-5)


def test_training_lowers_the_loss(peft_lm):
    lm, agents, packs = peft_lm
    agents = agents.model_copy(update={"epochs": 6, "learning_rate": 2e-3})
    result = train_adapter(lm, packs, agents, seed=0)
    assert result.steps == 6 * int(np.ceil(len(packs) / agents.users_per_step))
    assert result.curve[-1][1] < result.curve[0][1]
    assert result.examples == sum(len(p.tasks) for p in packs)


def test_lower_layers_are_cached_only_for_a_later_epoch(peft_lm, monkeypatch):
    """Two epochs run the frozen lower layers once per batch and keep them; one epoch
    runs every layer in the training pass and holds no cache."""
    lm, agents, packs = peft_lm
    calls: list[tuple[int, int | None, bool]] = []
    original = lm.hidden

    def recording(batch, start=0, stop=None, hidden=None):
        calls.append((start, stop, hidden is not None))
        return original(batch, start, stop, hidden=hidden)

    monkeypatch.setattr(lm, "hidden", recording)
    n_batches = int(np.ceil(len(packs) / agents.users_per_step))
    split = lm.n_layers - agents.top_layers
    train_adapter(lm, packs, agents.model_copy(update={"epochs": 2}), seed=0)
    assert calls.count((0, split, False)) == n_batches  # the cache, once
    assert calls.count((split, None, True)) == 2 * n_batches  # the top layers, each epoch
    calls.clear()
    result = train_adapter(lm, packs, agents.model_copy(update={"epochs": 1}), seed=0)
    assert calls == [(0, None, False)] * n_batches
    assert result.steps == n_batches


def test_a_killed_training_resumes_at_its_last_save_with_the_same_weights(peft_lm, tmp_path):
    """Killed after its third step (progress saved every step), a training resumed from
    the save ends with the weights, loss curve and example count of one never killed."""
    lm, agents, packs = peft_lm
    agents = agents.model_copy(update={"epochs": 2, "learning_rate": 2e-3})
    trainable = {n: p for n, p in lm.model.named_parameters() if p.requires_grad}
    initial = {n: p.detach().clone() for n, p in trainable.items()}

    def reset() -> None:
        with torch.no_grad():
            for n, p in trainable.items():
                p.copy_(initial[n])

    def weights() -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in trainable.items()}

    reset()
    whole = train_adapter(lm, packs, agents, seed=3)
    expected = weights()

    class Killed(Exception):
        pass

    counted: list[int] = []

    def dies_after_three(n: int) -> None:
        counted.append(n)
        if len(counted) == 3:
            raise Killed

    state = tmp_path / "global.progress.pt"
    reset()
    with pytest.raises(Killed):
        train_adapter(
            lm, packs, agents, seed=3, on_step=dies_after_three, state_path=state, save_every_s=0
        )
    assert state.exists()
    with torch.no_grad():  # the weights a fresh process would start from
        for p in trainable.values():
            p.normal_()
    counted.clear()
    resumed = train_adapter(
        lm, packs, agents, seed=3, on_step=counted.append, state_path=state, save_every_s=0
    )
    assert resumed.steps == whole.steps
    assert len(counted) == whole.steps - 3 + 1  # the restored steps first, at once
    assert sum(counted) == whole.examples * agents.epochs
    assert [s for s, _ in resumed.curve] == [s for s, _ in whole.curve]
    assert [v for _, v in resumed.curve] == pytest.approx([v for _, v in whole.curve], rel=1e-5)
    for name, value in weights().items():
        torch.testing.assert_close(value, expected[name], rtol=1e-5, atol=1e-7)
    # a save of another training (another seed) is not resumed
    counted.clear()
    train_adapter(lm, packs, agents, seed=4, on_step=counted.append, state_path=state)
    assert len(counted) == whole.steps  # every step trained, none restored


def test_adapters_are_peft_folders(trained_run):
    folder = trained_run / "adapters"
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert names == ["global", "p0", "p1"]
    for name in names:
        config = json.loads((folder / name / "adapter_config.json").read_text())
        assert config["peft_type"] == "LORA" and config["r"] == 16
        assert config["layers_to_transform"] == list(range(LAYERS - 6, LAYERS))  # the top 6
        assert (folder / name / "adapter_model.safetensors").stat().st_size > 0
        assert json.loads((folder / name / "training.json").read_text())["steps"] > 0


def _reference_answers(agent, user, items):
    """Expected ratings and P(watch) by the plain PEFT forward pass on each full chat
    prompt, the CF log-prior added to the digits and the watch prior's log-odds to
    logit(yes) - logit(no), as the agent does (float32)."""
    lm, model = agent.lm, agent.lm.model
    model.set_adapter(agent._adapter(user))
    prefix = lm.encode_prefix(agent.profiles[user])
    priors = torch.tensor(agent.prior.predict(user, items), dtype=torch.float32)
    offsets = prior_logits(priors, agent.config.agents.prior_sigma)
    assert agent.watch_prior is not None  # the default trains with one
    odds = torch.tensor(agent.watch_prior.log_odds(user, items), dtype=torch.float32)
    expected, watch = [], []
    with torch.inference_mode():
        for k, (rate_q, watch_q) in enumerate(
            zip(
                agent._questions(user, items, "rate"),
                agent._questions(user, items, "watch"),
                strict=True,
            )
        ):
            ids = torch.tensor([list(prefix + lm.encode_suffix(rate_q))])
            lp = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), dim=-1)[None]
            probs, _ = answer_distribution(
                with_prior(lp, lm.digit_ids, offsets[k : k + 1]), [[i] for i in lm.digit_ids]
            )
            expected.append(float(probs[0] @ torch.arange(1.0, 6.0)))
            ids = torch.tensor([list(prefix + lm.encode_suffix(watch_q))])
            lp = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), dim=-1)[None]
            lp = with_watch_prior(lp, lm.yes_ids, lm.no_ids, odds[k : k + 1])
            watch.append(float(answer_distribution(lp, [lm.yes_ids, lm.no_ids])[0][0, 0]))
    return np.array(expected), np.array(watch)


def test_agent_answers_equal_the_plain_peft_forward_pass(trained_run):
    agent = UserAgent.from_workdir(trained_run, mode="persona", dtype="float32")
    users = sorted(agent.personas, key=lambda u: agent.personas[u])
    a, b = users[0], users[-1]
    assert agent.personas[a] != agent.personas[b]
    items = list(agent.items)[:5]
    together = agent.rating_distributions([(a, items), (b, items)])  # mixed personas
    watch = agent.watch_probabilities([(a, items), (b, items)])
    pages = agent.page_scores([(a, items[:3]), (b, items[2:])])
    for row, user in enumerate((a, b)):
        expected, p_watch = _reference_answers(agent, user, items)
        np.testing.assert_allclose(together[row]["expected"], expected, atol=1e-4)
        np.testing.assert_allclose(watch[row], p_watch, atol=1e-4)
        np.testing.assert_allclose(together[row]["probs"].sum(axis=1), 1.0, atol=1e-6)
        assert all(1.0 <= r <= 5.0 for r in together[row]["expected"])
        # a session's page answers both questions in one call, the same answers
        its = slice(0, 3) if row == 0 else slice(2, 5)
        np.testing.assert_allclose(pages[row][0], p_watch[its], atol=1e-4)
        np.testing.assert_allclose(pages[row][1]["expected"], expected[its], atol=1e-4)
    assert agent.rate(a, items) == pytest.approx(together[0]["expected"].tolist(), abs=1e-5)
    with pytest.raises(ConfigError, match="not a simulated user"):
        agent.rate("nobody", items)
    with pytest.raises(ConfigError, match="unknown item"):
        agent.rate(a, ["no-such-item"])


@pytest.mark.model
def test_the_packaged_model_trains_and_answers_as_its_plain_forward_pass(real_trained_run):
    """SmolLM2-135M itself: its adapter's training lowered the loss, and the agent's
    answers (cached prefixes, packed items, both priors) are its plain PEFT forward
    pass's on each full prompt."""
    training = json.loads((real_trained_run / "adapters" / "global" / "training.json").read_text())
    curve = [loss for _, loss in training["curve"]]
    assert training["steps"] > 0 and curve[-1] < curve[0]
    # trained on the default watch prior: the stacked choice model, out of fold
    summary = json.loads((real_trained_run / "adapters" / "manifest.json").read_text())["summary"]
    prior = summary["watch_prior"]
    assert prior["kind"] == "stacked" and len(prior["stacked"]["families"]) == 9
    assert prior["oof_auc"] > 0.5
    agent = UserAgent.from_workdir(real_trained_run, mode="global", dtype="float32")
    assert agent.watch_prior is not None and agent.watch_prior.kind == "stacked"
    user, items = sorted(agent.profiles)[0], list(agent.items)[:4]
    ratings = agent.rating_distributions([(user, items)])[0]["expected"]
    watch = agent.watch_probabilities([(user, items)])[0]
    expected, p_watch = _reference_answers(agent, user, items)
    np.testing.assert_allclose(ratings, expected, atol=1e-4)
    np.testing.assert_allclose(watch, p_watch, atol=1e-4)


@pytest.mark.model
def test_agents_in_bfloat16_answer_close_to_float32(real_trained_run):
    """Adapters trained in one precision score in the other: expected ratings within
    0.05 stars, P(watch) within 0.5 in log-odds (the bf16 bound on the yes/no tokens'
    log-probabilities in tests/agents/test_modeling.py is 0.25 each; compared as
    log-odds because the watch prior pushes some answers close to 0 or 1)."""
    fp32 = UserAgent.from_workdir(real_trained_run, mode="global", dtype="float32")
    bf16 = UserAgent.from_workdir(real_trained_run, mode="global", dtype="bfloat16")
    assert bf16.lm.dtype == torch.bfloat16
    requests = [(u, list(fp32.items)[:5]) for u in sorted(fp32.profiles)[:2]]
    for x, y in zip(
        fp32.rating_distributions(requests), bf16.rating_distributions(requests), strict=True
    ):
        np.testing.assert_allclose(y["expected"], x["expected"], atol=0.05)
    for x, y in zip(
        fp32.watch_probabilities(requests), bf16.watch_probabilities(requests), strict=True
    ):
        np.testing.assert_allclose(logit(y), logit(x), atol=0.5)


def test_items_the_catalogue_lacks_are_rated_from_their_description(trained_run):
    """A described item is asked about as a catalogue item nobody has rated (title,
    year, genres; the CF prior gives the user's mean), and the agent's answer is the
    plain forward pass's on that prompt."""
    agent = UserAgent.from_workdir(trained_run, mode="persona", dtype="float32")
    user = sorted(agent.profiles)[0]
    new = {"title": "A Film Nobody Saw", "year": 2031, "genres": ["Drama", "Sci-Fi"]}
    known = next(i for i, it in agent.items.items() if it["count"] > 0)
    ratings = agent.rate(user, [known, new])
    new_id = "new:A Film Nobody Saw (2031)"
    assert agent.describe_items([new]) == [new_id]  # the same description, the same id
    question = agent._questions(user, [new_id], "rate")[0]
    assert "A Film Nobody Saw (2031)" in question and "Not rated by anyone yet." in question
    assert agent.prior.predict(user, [new_id])[0] == agent.prior.user_fallback[user]
    expected, _ = _reference_answers(agent, user, [known, new_id])
    np.testing.assert_allclose(ratings, expected, atol=1e-4)
    with pytest.raises(ConfigError, match="title"):
        agent.describe_items([{"year": 1999}])
    with pytest.raises(ConfigError, match="catalogue item"):
        agent.describe_items([{"title": "x", "item_id": known}])
    with pytest.raises(ConfigError, match="unknown field"):
        agent.describe_items([{"title": "x", "director": "y"}])


@pytest.fixture(scope="module")
def evaluated(trained_run, agent_log_files, make_agent_config, copy_run):
    """A copy of the trained run, evaluated: (folder, config, the stage's result)."""
    workdir = copy_run(trained_run)
    cfg = make_agent_config(agent_log_files)
    results = run_pipeline(workdir, cfg, stages=(*AGENT_STAGES, EvaluateStage))
    return workdir, cfg, results[-1]


def test_evaluation_scores_the_agents_beside_the_baselines(evaluated):
    workdir, cfg, result = evaluated
    metrics = result.summary["metrics"]
    scored = pd.read_parquet(workdir / "eval" / "predictions.parquet")
    for name in ("zero-shot", "global-lora", "persona-lora"):
        m = metrics[name]
        mine = scored[scored.model == name]
        assert m["kind"] == "agent" and m["n"] == result.summary["agent_pairs"] == len(mine)
        # the metrics are those of the predictions written beside them
        assert m["rmse"] == pytest.approx(
            float(np.sqrt(((mine.rating - mine.predicted) ** 2).mean())), abs=1e-6
        )
        assert m["urr"] == pytest.approx(1 - mine.greedy_is_digit.astype(bool).mean(), abs=1e-6)
        assert m["digit_mass"] == pytest.approx(mine.digit_mass.mean(), abs=1e-6)
    # trained adapters (on top of their prior) beat the base model asked zero-shot
    for name in ("global-lora", "persona-lora"):
        assert metrics[name]["rmse"] < metrics["zero-shot"]["rmse"] - 0.1
    assert metrics["persona-lora"]["training_examples"] > 0
    # The prior alone is a rating model: the CF prior's predictions on every test pair,
    # and each trained agent is compared with it on the agents' pairs.
    prior = metrics["prior"]
    assert prior["kind"] == "prior" and prior["prior_model"] == cfg.agents.prior_model
    preds = pd.read_parquet(workdir / "eval" / "predictions.parquet").query("model == 'prior'")
    cf = CFPrior.load(workdir / "adapters")
    expected = [cf.predict(u, [i])[0] for u, i in zip(preds.user_id, preds.item_id, strict=True)]
    np.testing.assert_allclose(preds.predicted, expected)
    for name in ("global-lora", "persona-lora"):
        vs = metrics[name]["compared"]["vs_prior_alone"]
        assert vs["pairs"] == metrics[name]["n"] and vs["ci"][0] <= vs["rmse_difference"]
    # The same adapters scored with the rationale left out, beside them.
    assert metrics["global-lora-ms"]["context"] == "Ms (Ml left out)"
    assert metrics["global-lora-ms"]["n"] == metrics["global-lora"]["n"]
    # leaving the rationale out changes the prompt, so most answers move
    full = scored[scored.model == "global-lora"].set_index(["user_id", "item_id"]).predicted
    ms = scored[scored.model == "global-lora-ms"].set_index(["user_id", "item_id"]).predicted
    assert ((ms.reindex(full.index) - full).abs() > 1e-4).mean() > 0.5
    assert "on_agent_pairs" in metrics["biased_mf"]
    preds = pd.read_parquet(workdir / "eval" / "predictions.parquet")
    agents = preds[preds.model == "persona-lora"]
    assert agents.predicted.between(1, 5).all() and agents.persona.notna().all()

    # Taste alignment: every agent and popularity on every list, thresholds from train.
    # The recommenders' shown lists are list kinds of their own, measured by AUC alone.
    taste = result.summary["taste"]
    shown = {f"shown {n}" for n in ("popular", "itemknn", "userknn", "mf", "bpr", "sasrec")}
    samplers = {"uniform 1:1", "uniform 1:3", "popularity 1:1", "popularity 1:3"}
    assert set(taste) == samplers | shown
    for kind, lists in taste.items():
        assert {"popularity", "bpr", "biased_mf", "zero-shot", "persona-lora"} <= set(lists)
        for entry in lists.values():
            if kind in shown:  # users whose list holds both labels
                assert "f1" not in entry and entry["users"] <= 4
                assert np.isnan(entry["auc"]) or 0 <= entry["auc"] <= 1
            else:
                assert entry["users"] == 4 and 0 <= entry["f1"] <= 1 and 0 <= entry["auc"] <= 1
    # Free generation: answers in words, parsed; URR counted on them.
    words = pd.read_parquet(workdir / "eval" / "free_generation.parquet")
    assert len(words) == 9 and words.answer.map(type).eq(str).all()
    assert 0 <= metrics["global-lora"]["free_generation"]["urr"] <= 1


def test_changing_only_the_taste_settings_reuses_the_rating_predictions(
    evaluated, copy_run, monkeypatch
):
    from personasim.agents import UserAgent

    evaluated_run, cfg, evaluation = evaluated
    workdir = copy_run(evaluated_run)
    stages = (*AGENT_STAGES, EvaluateStage)
    before = evaluation.summary["metrics"]

    def no_rating(*args, **kwargs):
        raise AssertionError("the agents' ratings were scored again")

    monkeypatch.setattr(UserAgent, "predict_pairs", no_rating)
    changed = cfg.model_copy(
        update={"evaluate": cfg.evaluate.model_copy(update={"taste_samplers": ["uniform"]})}
    )
    result = run_pipeline(workdir, changed, stages=stages)[-1]
    kinds = {k for k in result.summary["taste"] if not k.startswith("shown ")}
    assert result.ran and kinds == {"uniform 1:1", "uniform 1:3"}
    for name in ("zero-shot", "global-lora", "persona-lora"):
        assert result.summary["metrics"][name]["rmse"] == before[name]["rmse"]
        assert result.summary["metrics"][name]["urr"] == before[name]["urr"]

    # Analysis-only settings (more bootstrap rounds) reuse the taste scores and free
    # answers too: no agent is asked anything again.
    monkeypatch.setattr(UserAgent, "watch_probabilities", no_rating)
    monkeypatch.setattr(UserAgent, "answer_freely", no_rating)
    more = changed.model_copy(
        update={"evaluate": changed.evaluate.model_copy(update={"bootstrap_rounds": 300})}
    )
    again = run_pipeline(workdir, more, stages=stages)[-1]
    assert again.ran and again.summary["taste"].keys() == result.summary["taste"].keys()
    for lists in again.summary["taste"]:
        for name in ("zero-shot", "persona-lora"):
            assert (
                again.summary["taste"][lists][name]["auc"]
                == (result.summary["taste"][lists][name]["auc"])
            )


def test_a_killed_training_resumes_at_the_next_adapter(
    agent_log_files, make_agent_config, tmp_path, monkeypatch
):
    import personasim.agents.training as training_module
    import personasim.pipeline.train_adapters as train_module

    real = train_module.train_adapter
    calls = []

    def dies_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_adapter", dies_second)
    monkeypatch.setattr(training_module, "SAVE_EVERY_S", 0.0)  # progress saved every step
    cfg = make_agent_config(agent_log_files, modes=["persona"])
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(tmp_path, cfg, stages=AGENT_STAGES)
    assert not (tmp_path / "adapters").exists()
    calls.clear()
    monkeypatch.setattr(
        train_module, "train_adapter", lambda *a, **k: (calls.append(1), real(*a, **k))[1]
    )
    results = run_pipeline(tmp_path, cfg, stages=AGENT_STAGES)
    assert results[-1].ran and len(calls) == 1  # only the second persona trained again
    assert sorted(p.name for p in (tmp_path / "adapters").iterdir() if p.is_dir()) == ["p0", "p1"]
    # the progress saved while p1 trained went once p1 was saved
    assert not list((tmp_path / ".checkpoints").rglob("*.progress.pt"))


def test_scoring_settings_leave_the_adapters_up_to_date(
    trained_run, agent_log_files, make_agent_config
):
    from personasim.workspace import Workspace

    ws = Workspace(trained_run)
    scoring = make_agent_config(agent_log_files, score_batch_items=7, prefix_cache_mib=1)
    assert TrainStage(ws, scoring).status() is None
    # the gradient selection's pool means nothing to a random selection
    assert TrainStage(ws, make_agent_config(agent_log_files, selection_pool=9)).status() is None
    training = make_agent_config(agent_log_files, lora_rank=4)
    assert TrainStage(ws, training).status() == "configuration changed"
