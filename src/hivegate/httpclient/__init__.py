"""Every outbound HTTP request the gateway makes goes through this package.

- `loopback`: the one rule for which hosts are this machine and which URLs may use plain http.
- `guard`: the SSRF guard (`check_url`, `GuardedResolver`) and `GuardedHTTPClient`, the aiohttp client behind it
  that fetches discovery documents, JWKS, introspection answers, client metadata documents, upstream IdP and STS
  endpoints.
- `pool`: `HTTP1Pool`, the lean keep-alive HTTP/1.1 client of the reverse proxy's hot path (a benchmark showed
  aiohttp at ~45% of the gateway's CPU per proxied request).
- `streaming`: the aiohttp session the vMCP uses to talk to remote MCP backends (long-lived streams, no total
  timeout).
"""
