"""The official `openai` Python SDK's Responses API against Pura (run by tests/sdk.rs, which
passes PURA_BASE, PURA_KEY and PURA_MODELS): create, stream, a tool round trip, and
previous_response_id, over every upstream dialect (OpenAI natively, the others translated)."""

import json
import os

import pytest
from openai import OpenAI

BASE = os.environ["PURA_BASE"]
KEY = os.environ["PURA_KEY"]
MODELS = os.environ["PURA_MODELS"].split(",")
PATHS = ["/v1", "/api"]

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather in a given city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def client(path="/v1"):
    return OpenAI(base_url=BASE + path, api_key=KEY, max_retries=0)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("model", MODELS)
def test_create(path, model):
    r = client(path).responses.create(model=model, instructions="Be terse.", input="Say hello")
    assert r.status == "completed"
    assert r.output_text.startswith("Hello from fake")
    assert r.usage.input_tokens > 0
    assert r.usage.output_tokens_details.reasoning_tokens >= 0


@pytest.mark.parametrize("model", MODELS)
def test_stream(model):
    with client().responses.stream(model=model, input="Say hello") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text
    assert final.output_text.startswith("Hello from fake")
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_tool_round_trip_with_previous_response_id(model):
    c = client()
    first = c.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER])
    calls = [o for o in first.output if o.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    assert "city" in json.loads(calls[0].arguments)
    second = c.responses.create(
        model=model,
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"temp_c": 21}'}],
    )
    assert second.status == "completed"
    assert second.output_text.startswith("Hello from fake")


def test_unknown_previous_response_is_a_404():
    import openai

    with pytest.raises(openai.NotFoundError):
        client().responses.create(model=MODELS[0], previous_response_id="resp_nope", input="hi")
