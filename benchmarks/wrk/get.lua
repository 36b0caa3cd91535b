-- GET with an optional bearer token (PB_TOKEN); prints exact percentiles at the end.
local token = os.getenv("PB_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
wrk.method = "GET"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("PB_RESULT requests=%d duration_us=%d p50=%d p90=%d p95=%d p99=%d "
    .. "connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(95), latency:percentile(99), e.connect, e.read, e.write, e.status,
    e.timeout))
end
