"""The request pipeline: what every MCP message goes through, whichever front carries it.

The stages, in order, and where each lives (`hivegate.asgi.app.Gateway` runs them; the fronts in `hivegate.asgi`
translate transports and nothing else):

1. host and origin: `asgi.origin` (DNS-rebinding defence);
2. headers: `headers` (a state header given twice, an unsupported `MCP-Protocol-Version`);
3. authentication: `hivegate.authn` (failures logged at a bounded rate: `observe.ratelimit`);
4. parse and validate: `messages` (size, depth, duplicate keys, JSON-RPC shape, batches only under 2025-03-26);
5. per-principal limits: `limits` (in-flight requests, standalone streams);
6. authorization: `authorize` over `hivegate.authz` (a batch goes on whole or not at all);
7. observation: `hivegate.observe.exchange` (audit, metrics, tracing of each call);
8. routing to the backend: `hivegate.backends` (stdio, remote) and `hivegate.vmcp` (many backends);
9. filtering the answer: `answers` (by the request each answer answers, on every stream) and `events` (event ids
   sealed to their session).
"""
