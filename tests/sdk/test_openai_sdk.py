"""The official `openai` Python SDK as a real client of Pura.

Run by tests/sdk.rs, which starts fake upstreams of every dialect and the gateway, then
passes PURA_BASE (http://127.0.0.1:PORT), PURA_KEY and PURA_MODELS (comma-separated models,
one per dialect) in the environment.
"""

import json
import os

import openai
import pytest
from openai import OpenAI

BASE = os.environ["PURA_BASE"]
KEY = os.environ["PURA_KEY"]
MODELS = os.environ["PURA_MODELS"].split(",")
PATHS = ["/v1", "/api"]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def client(path):
    return OpenAI(base_url=BASE + path, api_key=KEY, max_retries=0)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("model", MODELS)
def test_non_stream(path, model):
    raw = client(path).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
    )
    resp = raw.parse()
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content.startswith("Hello from fake")
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert raw.headers["x-pura-model"] == model
    assert float(raw.headers["x-pura-cost"]) > 0
    assert raw.headers["x-pura-tier"] in ("cheap", "mid", "premium")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("model", MODELS)
def test_stream_with_usage(path, model):
    stream = client(path).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Hello from fake")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens > 0
    # Pura's final cost rides on the last chunk, as an extra field the SDK keeps.
    assert chunks[-1].model_extra["x_pura"]["costUsd"] > 0


@pytest.mark.parametrize("model", MODELS)
def test_stream_helper_accumulates(model):
    with client("/v1").chat.completions.stream(
        model=model, messages=[{"role": "user", "content": "Say hello"}]
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content.startswith("Hello from fake")


@pytest.mark.parametrize("model", MODELS)
def test_tool_call(model):
    resp = client("/v1").chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments), dict)
    assert call.id


@pytest.mark.parametrize("model", MODELS)
def test_streamed_tool_call(model):
    stream = client("/api").chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    name, args, finish = None, "", None
    for c in stream:
        if not c.choices:
            continue
        for tc in c.choices[0].delta.tool_calls or []:
            name = tc.function.name or name
            args += tc.function.arguments or ""
        finish = c.choices[0].finish_reason or finish
    assert name == "get_weather"
    assert isinstance(json.loads(args), dict)
    assert finish == "tool_calls"


@pytest.mark.parametrize("path", PATHS)
def test_bad_key_raises_authentication_error(path):
    bad = OpenAI(base_url=BASE + path, api_key="pura_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "invalid_api_key"


def test_unknown_model_is_not_found():
    with pytest.raises(openai.NotFoundError) as err:
        client("/v1").chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "model_not_found"


@pytest.mark.parametrize("path", PATHS)
def test_models_list(path):
    ids = [m.id for m in client(path).models.list()]
    assert "auto" in ids
    for model in MODELS:
        assert model in ids
