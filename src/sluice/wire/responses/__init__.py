"""OpenAI Responses API wire format ⇄ the neutral model (request, response, stream)."""
