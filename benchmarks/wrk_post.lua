-- wrk script: POST one JSON-RPC request (a tools/call) per call to an MCP endpoint.
-- Everything comes from the environment, set by benchmarks/run.py:
--   BENCH_BODY        the JSON-RPC request body
--   BENCH_TOKEN       bearer token (optional)
--   BENCH_SESSION_ID  Mcp-Session-Id (optional)
-- At the end it prints one machine-readable line, "BENCH_RESULT key=value ...", latencies in microseconds.

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"

local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local session_id = os.getenv("BENCH_SESSION_ID")
if session_id ~= nil and session_id ~= "" then
  wrk.headers["Mcp-Session-Id"] = session_id
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d status_errors=%d socket_errors=%d p50_us=%d p90_us=%d p99_us=%d mean_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
