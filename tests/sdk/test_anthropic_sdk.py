"""The official `anthropic` Python SDK as a real client of Pura's /v1/messages.

Run by tests/messages.rs, which starts a fake Anthropic and a fake OpenAI upstream and the
gateway, then passes PURA_BASE (http://127.0.0.1:PORT), PURA_KEY, PURA_NATIVE_MODEL (served by
the Anthropic fake: the body goes through natively), PURA_TRANSLATED_MODEL (served by the
OpenAI fake: translated), and the fake's thinking text and signature.
"""

import os

import anthropic
import pytest
from anthropic import Anthropic

BASE = os.environ["PURA_BASE"]
KEY = os.environ["PURA_KEY"]
NATIVE = os.environ["PURA_NATIVE_MODEL"]
TRANSLATED = os.environ["PURA_TRANSLATED_MODEL"]
THINKING = os.environ["PURA_FAKE_THINKING"]
SIGNATURE = os.environ["PURA_FAKE_SIGNATURE"]
MODELS = [NATIVE, TRANSLATED, "claude-sonnet-4-6"]  # the last: an unknown claude-* id, routed as auto

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a given city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def client(**kw):
    # The 2.x SDK sends the key as a bearer token; x-api-key is covered by the Rust tests and
    # by the `api_key_header` case below.
    return Anthropic(base_url=BASE, api_key=KEY, max_retries=0, **kw)


@pytest.mark.parametrize("model", MODELS)
def test_create(model):
    raw = client().messages.with_raw_response.create(
        model=model,
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "Say hello"}],
    )
    msg = raw.parse()
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.content[0].type == "text"
    assert msg.content[0].text.startswith("Hello from fake")
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    assert float(raw.headers["x-pura-cost"]) > 0
    assert raw.headers["x-pura-tier"] in ("cheap", "mid", "premium")
    assert raw.headers["request-id"]


def test_api_key_header():
    c = Anthropic(base_url=BASE, api_key=None, auth_token=None, max_retries=0,
                  default_headers={"x-api-key": KEY})
    msg = c.messages.create(model=NATIVE, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text.startswith("Hello from fake")


@pytest.mark.parametrize("model", MODELS)
def test_stream(model):
    with client().messages.stream(
        model=model, max_tokens=100, messages=[{"role": "user", "content": "Say hello"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("Hello from fake")
    assert final.content[-1].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


def test_count_tokens():
    short = client().messages.count_tokens(model=NATIVE, messages=[{"role": "user", "content": "hi"}])
    long = client().messages.count_tokens(
        model="claude-sonnet-4-6",
        system="You are a coding agent.",
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "word " * 200}],
    )
    assert 0 < short.input_tokens < long.input_tokens


@pytest.mark.parametrize("model", [NATIVE, TRANSLATED])
@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip(model, stream):
    c = client()
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]

    def ask():
        kw = dict(model=model, max_tokens=200, tools=[WEATHER_TOOL], messages=messages)
        if stream:
            with c.messages.stream(**kw) as s:
                return s.get_final_message()
        return c.messages.create(**kw)

    first = ask()
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and call.input == {"city": "fake"}
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call.id, "content": "21C and sunny"}]})
    second = ask()
    assert second.stop_reason == "end_turn"
    assert second.content[-1].text.startswith("Hello from fake")


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_blocks_round_trip_to_anthropic(stream):
    """The fake Anthropic signs its thinking block and rejects a handed-back block whose
    signature does not match, as the real API does; Pura passes it through untouched."""
    c = client()
    messages = [{"role": "user", "content": "Think, then say hello"}]
    kw = dict(model=NATIVE, max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024},
              extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"})
    if stream:
        with c.messages.stream(messages=messages, **kw) as s:
            first = s.get_final_message()
    else:
        first = c.messages.create(messages=messages, **kw)
    thinking = first.content[0]
    assert thinking.type == "thinking"
    assert thinking.thinking == THINKING and thinking.signature == SIGNATURE
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append({"role": "user", "content": "Again"})
    second = c.messages.create(messages=messages, **kw)
    assert second.content[-1].text.startswith("Hello from fake")

    # A tampered signature reaches the upstream as sent, and is refused there.
    messages[1]["content"][0]["signature"] = "tampered"
    with pytest.raises(anthropic.BadRequestError) as err:
        c.messages.create(messages=messages, **kw)
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert "signature" in err.value.body["error"]["message"]


def test_errors_are_typed():
    bad = Anthropic(base_url=BASE, api_key="pura_wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model=NATIVE, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.NotFoundError):
        client().messages.create(model="no-such-model", max_tokens=10,
                                 messages=[{"role": "user", "content": "hi"}])
