"""Every fast scoring path against the model's own forward pass on the full prompt.

The reference is ``PeftModel(...)(input_ids).logits[:, -1]`` on the whole chat text of
one answer (the adapter of its user active), as a user of transformers would compute it.
The fast paths: packed items after one prefix (block mask), a cached prefix's keys and
values reused by its items (from the bounded prefix cache too), rows of different
persona adapters in one batch, cached lower layers, and bfloat16. float32 is held to
1e-4 in log-probability; bfloat16 to a KL bound over the whole vocabulary.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from personasim.agents.answers import answer_distribution, with_prior
from personasim.agents.lm import AgentLM
from personasim.agents.packing import BASE_ADAPTER, Pack
from personasim.agents.prior import prior_logits
from personasim.config import AgentConfig

PROFILES = ("Loves comedies, hates horror.", "A fan of old westerns and war movies; rates harshly.")
QUESTIONS = (
    "Movie: Toy Story (1995). How would you rate it, from 1 to 5?",
    "Movie: Scream (1996), Horror. How would you rate it, from 1 to 5?",
    "Movie: Unforgiven (1992), Western. Would you watch it? Answer yes or no.",
    "A past rating of yours: you rated Heat (1995) 4/5. Movie: Ronin (1998), Action.\n"
    "How would you rate it, from 1 to 5?",
)
ADAPTERS = ("p0", "p1")
FP32_ATOL = 1e-4
BF16_KL = 0.02  # nats, per answer over the whole vocabulary


def _with_random_adapters(lm: AgentLM, folder=None) -> AgentLM:
    """Two LoRA adapters on the top 6 layers with random (non-zero) weights, saved to
    `folder`, or loaded from it."""
    from peft import PeftModel, get_peft_model

    from personasim.agents.adapters import lora_config

    if folder is not None and (folder / ADAPTERS[0]).exists():
        model = PeftModel.from_pretrained(lm.model, str(folder / ADAPTERS[0]), adapter_name="p0")
        model.load_adapter(str(folder / ADAPTERS[1]), adapter_name="p1")
    else:
        config = lora_config(AgentConfig(top_layers=6), lm.n_layers)
        config.init_lora_weights = False  # random A and B: the adapters change answers
        torch.manual_seed(0)
        model = get_peft_model(lm.model, config, adapter_name="p0")
        model.add_adapter("p1", config)
        if folder is not None:
            model.save_pretrained(str(folder), selected_adapters=list(ADAPTERS))
    model.eval()
    lm.model = model
    return lm


@pytest.fixture(scope="module")
def adapter_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("random-adapters")


@pytest.fixture(scope="module")
def lm(adapter_folder, tiny_model):
    base = AgentLM.load(AgentConfig(base_model=str(tiny_model), device="cpu", dtype="float32"))
    return _with_random_adapters(base, adapter_folder)


@pytest.fixture(scope="module")
def bf16_lm(lm, adapter_folder, tiny_model):
    base = AgentLM.load(AgentConfig(base_model=str(tiny_model), device="cpu", dtype="bfloat16"))
    return _with_random_adapters(base, adapter_folder)  # the fp32-made adapters, loaded


def _reference(lm: AgentLM, prefix: tuple[int, ...], suffix: tuple[int, ...], adapter: str):
    """Log-probabilities of the next token after the whole prompt, by the model's own
    forward pass (float32 log-softmax)."""
    ids = torch.tensor([list(prefix + suffix)])
    with torch.inference_mode():
        if adapter == BASE_ADAPTER:
            with lm.model.disable_adapter():
                logits = lm.model(input_ids=ids).logits[0, -1]
        else:
            lm.model.set_adapter(adapter)
            logits = lm.model(input_ids=ids).logits[0, -1]
    return torch.log_softmax(logits.float(), dim=-1)


def _prompts(lm):
    return [lm.encode_prefix(p) for p in PROFILES], [lm.encode_suffix(q) for q in QUESTIONS]


def test_answer_distribution_and_prior():
    log_probs = torch.log_softmax(torch.randn(3, 50), dim=-1)
    groups = [[1], [2], [3, 4]]
    probs, mass = answer_distribution(log_probs, groups)
    p = log_probs.exp()
    expected_mass = p[:, 1] + p[:, 2] + p[:, 3] + p[:, 4]
    torch.testing.assert_close(mass, expected_mass)
    torch.testing.assert_close(probs[:, 2], (p[:, 3] + p[:, 4]) / expected_mass)
    offsets = prior_logits(torch.tensor([1.0, 3.0, 5.0]), sigma=0.5, centre="mode")
    assert offsets.argmax(dim=1).tolist() == [0, 2, 4]
    adjusted = with_prior(log_probs, [10, 11, 12, 13, 14], offsets)
    torch.testing.assert_close(adjusted.exp().sum(dim=1), torch.ones(3))
    assert with_prior(log_probs, [10], None) is log_probs


def test_prefix_plus_suffix_is_the_full_chat(lm):
    prefix = lm.encode_prefix("A viewer who loves comedies.")
    suffix = lm.encode_suffix("Movie: Heat (1995). How would you rate it, from 1 to 5?")
    full = lm.tokenizer.apply_chat_template(
        [
            {"role": "system", "content": "A viewer who loves comedies."},
            {"role": "user", "content": "Movie: Heat (1995). How would you rate it, from 1 to 5?"},
        ],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert list(prefix + suffix) == lm.tokenizer.encode(full, add_special_tokens=False)


def test_the_adapters_change_the_answers(lm):
    """Otherwise the adapter routing below could be wrong unseen."""
    prefixes, suffixes = _prompts(lm)
    answers = [_reference(lm, prefixes[0], suffixes[0], a) for a in (BASE_ADAPTER, *ADAPTERS)]
    assert (answers[0] - answers[1]).abs().max() > 0.05
    assert (answers[1] - answers[2]).abs().max() > 0.05


@pytest.mark.slow
def test_packed_items_with_mixed_adapters_equal_the_models_forward(lm):
    prefixes, suffixes = _prompts(lm)
    packs = [
        Pack(prefixes[0], tuple(suffixes), "p0"),
        Pack(prefixes[1], tuple(suffixes[:2]), "p1"),
        Pack(prefixes[1], (suffixes[3],), BASE_ADAPTER),
    ]
    packed = lm.score(packs)
    reference = torch.stack(
        [_reference(lm, p.prefix, s, p.adapter) for p in packs for s in p.suffixes]
    )
    assert packed.shape == (7, lm.model.config.vocab_size)
    np.testing.assert_allclose(packed.numpy(), reference.numpy(), atol=FP32_ATOL)


@pytest.mark.slow
def test_cached_prefixes_and_mixed_adapters_equal_the_models_forward(lm):
    prefixes, suffixes = _prompts(lm)
    rows = [(prefixes[0], "p0"), (prefixes[1], "p1"), (prefixes[0], BASE_ADAPTER)]
    items = [
        (0, suffixes[0]),
        (1, suffixes[1]),
        (2, suffixes[2]),
        (0, suffixes[3]),
        (1, suffixes[2]),
        (2, suffixes[0]),
    ]
    lm.prefix_states_cache.clear()
    reference = torch.stack([_reference(lm, rows[i][0], s, rows[i][1]) for i, s in items])
    for _ in range(2):  # computed, then from the prefix cache
        cached = lm.score_cached([p for p, _ in rows], [a for _, a in rows], items, chunk=4)
        np.testing.assert_allclose(cached.numpy(), reference.numpy(), atol=FP32_ATOL)
    assert len(lm.prefix_states_cache) == 2 + 3  # a lower part per prefix, a top per row


def test_the_prefix_cache_shares_the_layers_below_the_adapters_and_is_bounded(lm):
    prefixes, _ = _prompts(lm)
    lm.prefix_states_cache.clear()
    split = lm.lora_start()
    assert split == lm.n_layers - 6  # the adapters carry LoRA on the top 6 layers
    (lower, top), (lower_again, top_p1) = lm.prefix_states([prefixes[0]] * 2, ["p0", "p1"])
    assert lower is lower_again and top is not top_p1  # one lower part for both adapters
    assert lower.length == top.length == len(prefixes[0])
    assert len(lower.keys) == split and len(top.keys) == 6
    per_layer = 2 * lower.keys[0].numel() * 4  # keys and values, float32
    assert top.nbytes == 6 * per_layer
    assert lower.nbytes == split * per_layer + lower.hidden.numel() * 4
    assert len(lm.prefix_states_cache) == 3
    ((lower_1, top_1),) = lm.prefix_states([prefixes[1]], [BASE_ADAPTER])
    kept, lm.prefix_states_cache = (
        lm.prefix_states_cache,
        type(lm.prefix_states_cache)(
            maxsize=int((lower_1.nbytes + top_1.nbytes) * 1.2), getsizeof=lambda s: s.nbytes
        ),
    )
    try:
        lm.prefix_states([prefixes[0]], [BASE_ADAPTER])
        lm.prefix_states([prefixes[1]], [BASE_ADAPTER])
        assert ("__lower__", split, prefixes[0]) not in lm.prefix_states_cache  # evicted
        assert ("__lower__", split, prefixes[1]) in lm.prefix_states_cache
        assert lm.prefix_states_cache.currsize <= lm.prefix_states_cache.maxsize
    finally:
        lm.prefix_states_cache = kept


@pytest.mark.slow
def test_a_prompt_asked_of_several_adapters_equals_the_models_forward(lm):
    """The zero-shot, global and persona agents on the same user and item share the
    layers below the adapters: each answer is still its own adapter's."""
    prefixes, suffixes = _prompts(lm)
    rows = [
        (prefixes[0], BASE_ADAPTER),
        (prefixes[0], "p0"),
        (prefixes[0], "p1"),
        (prefixes[1], "p1"),
    ]
    items = [(r, s) for r in range(4) for s in suffixes[:3]]
    reference = torch.stack([_reference(lm, rows[i][0], s, rows[i][1]) for i, s in items])
    cached = lm.score_cached([p for p, _ in rows], [a for _, a in rows], items, chunk=2)
    np.testing.assert_allclose(cached.numpy(), reference.numpy(), atol=FP32_ATOL)


@pytest.mark.slow
def test_cached_lower_layers_equal_the_models_forward(lm):
    """Training runs the frozen lower layers once and the LoRA layers every epoch."""
    from personasim.agents.packing import collate

    prefixes, suffixes = _prompts(lm)
    packs = [Pack(prefixes[0], tuple(suffixes[:2]), "p0"), Pack(prefixes[1], (suffixes[2],), "p1")]
    batch = collate(packs, lm.pad_id, lm.dtype, lm.device)
    split = lm.n_layers - 6
    with torch.inference_mode():
        lower = lm.hidden(batch, 0, split)
        top = lm.answer_log_probs(batch, lm.hidden(batch, split, None, hidden=lower))
    reference = torch.stack(
        [_reference(lm, p.prefix, s, p.adapter) for p in packs for s in p.suffixes]
    )
    np.testing.assert_allclose(top.numpy(), reference.numpy(), atol=FP32_ATOL)


def _kl(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    return (p_log.exp() * (p_log - q_log)).sum(dim=-1)


@pytest.mark.slow
def test_bfloat16_scoring_stays_close_to_the_float32_model(lm, bf16_lm):
    """The bf16 fast path (adapters made in float32) against the float32 model's own
    forward pass: a KL bound over the vocabulary, and the answers' tokens."""
    assert bf16_lm.dtype == torch.bfloat16
    prefixes, suffixes = _prompts(lm)
    rows = [(prefixes[0], "p0"), (prefixes[1], "p1"), (prefixes[1], BASE_ADAPTER)]
    items = [(r, s) for r in range(3) for s in suffixes]
    reference = torch.stack([_reference(lm, rows[i][0], s, rows[i][1]) for i, s in items])
    fast = bf16_lm.score_cached([p for p, _ in rows], [a for _, a in rows], items, chunk=5)
    kl = _kl(reference, fast)
    answer_tokens = lm.digit_ids + lm.yes_ids + lm.no_ids
    gap = (reference - fast)[:, answer_tokens].abs().max()
    print(
        f"bf16 vs fp32 model: KL max {kl.max():.4f} mean {kl.mean():.4f} nats; "
        f"max |d log p| on digits/yes/no {gap:.4f}"
    )
    assert float(kl.max()) < BF16_KL
    assert float(gap) < 0.25


@pytest.mark.slow
def test_answered_packs_read_the_answer_and_what_follows_it(lm):
    """Training packs end each suffix with its answer: the answer is read where the
    prompt ends, the end of the turn at the answer token, both as the model would."""
    from personasim.agents.packing import collate

    prefixes, suffixes = _prompts(lm)
    digit = lm.digit_ids[3]
    packs = [Pack(prefixes[0], (suffixes[0] + (digit,), suffixes[1] + (digit,)), "p0", True)]
    batch = collate(packs, lm.pad_id, lm.dtype, lm.device)
    with torch.inference_mode():
        hidden = lm.hidden(batch)
        answers = lm.answer_log_probs(batch, hidden)
        after = lm.head_log_probs(hidden[batch.rows, batch.answer_positions])
    for k, suffix in enumerate(suffixes[:2]):
        np.testing.assert_allclose(
            answers[k].numpy(), _reference(lm, prefixes[0], suffix, "p0").numpy(), atol=FP32_ATOL
        )
        following = _reference(lm, prefixes[0], suffix + (digit,), "p0")
        np.testing.assert_allclose(after[k].numpy(), following.numpy(), atol=FP32_ATOL)
    assert lm.tokenizer.decode([lm.end_of_turn_id]) == "<|im_end|>"


def test_kept_answers_renormalise_and_decide_as_the_whole_vocabulary():
    """Only the answer tokens' log-probabilities are kept (plus the rest's total and
    maximum): priors and greedy decisions come out as over the whole vocabulary."""
    from personasim.agents.answers import keep_answers

    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(6, 300) * 3, dim=-1)
    digits, yes, no = [10, 11, 12, 13, 14], [20, 21], [30, 31]
    kept = keep_answers(log_probs, digits + yes + no)
    torch.testing.assert_close(kept.log_probs.exp().sum(-1), torch.ones(6))
    offsets = torch.randn(6, 5) * 4
    full = with_prior(log_probs, digits, offsets)
    small = with_prior(kept.log_probs, list(range(5)), offsets)
    torch.testing.assert_close(small[:, :5], full[:, digits])
    full_probs, full_mass = answer_distribution(full, [[d] for d in digits])
    small_probs, small_mass = answer_distribution(small, [[c] for c in range(5)])
    torch.testing.assert_close(small_probs, full_probs)
    torch.testing.assert_close(small_mass, full_mass)
    shift = small[:, -1] - kept.log_probs[:, -1]
    others = torch.maximum(small[:, 5:-1].amax(-1), kept.rest_max + shift)
    greedy = small[:, :5].amax(-1) >= others
    assert greedy.tolist() == [int(t) in digits for t in full.argmax(-1)]
    assert len(kept[1:3]) == 2 and kept[1:3].rest_max.shape == (2,)


@pytest.mark.parametrize("sigma", [0.3, 0.8, 2.0])
def test_prior_alone_reproduces_the_cf_prediction(sigma):
    """A language model indifferent between the digits, plus the prior, answers the CF
    prediction in expectation, including near the ends of the scale."""
    cf = torch.tensor([1.0, 1.05, 1.7, 3.0, 3.6, 4.7, 4.95, 5.0])
    digits = [3, 7, 11, 12, 20]
    flat = torch.log_softmax(torch.zeros(len(cf), 30), dim=-1)  # equal mass on every token
    adjusted = with_prior(flat, digits, prior_logits(cf, sigma))
    probs, _ = answer_distribution(adjusted, [[d] for d in digits])
    expected = probs.double() @ torch.arange(1.0, 6.0, dtype=torch.float64)
    torch.testing.assert_close(expected, cf.double().clamp(1.001, 4.999), atol=2e-4, rtol=0)


def test_mode_centred_prior_pulls_extremes_to_the_middle():
    """The old placement (peak at the prediction) is kept on request; its mean is bent."""
    probs = prior_logits(torch.tensor([4.7]), 0.8, centre="mode").softmax(dim=-1)
    mean = float(probs[0] @ torch.arange(1.0, 6.0))
    assert 4.45 < mean < 4.5  # the 4.48 issue 20 measured
