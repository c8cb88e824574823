"""The request pipeline: what every MCP message goes through, whichever front carries it.

host/origin → authentication → parse and validate (`messages`) → per-principal limits → authorization →
observation → route to the backend → filter the answer. The fronts (`hivegate.asgi`) translate transports and
nothing else; each stage here is a small unit with its own tests.
"""
