"""Filters that map the shared airlock_* LLM values onto the LLM gateway (site.yml).

airlock_gateway_model_name(model)
    The name the gateway serves a LiteLLM model under: the model without its provider
    prefix (openai/gpt-4o -> gpt-4o; bedrock/anthropic.claude-x -> anthropic.claude-x).
    OpenHands asks for it as openai/<name> at the gateway's OpenAI-compatible URL, and
    litellm (in the app and the sandboxes) sends <name>.
"""
from __future__ import annotations


def airlock_gateway_model_name(model):
    text = str(model or "")
    provider, sep, rest = text.partition("/")
    return rest if sep and provider and rest else text


class FilterModule:
    def filters(self):
        return {"airlock_gateway_model_name": airlock_gateway_model_name}
