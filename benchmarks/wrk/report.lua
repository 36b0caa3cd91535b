-- Shared by the wrk scripts: the PB_RESULT (exact percentiles) and PB_CODES (non-2xx
-- responses by status, from every thread) lines that http_bench.py parses.
codes = {}
local threads = {}

-- call from setup(thread) in scripts that count status codes
function track(thread)
  table.insert(threads, thread)
end

-- call from response(status, headers, body)
function count_status(status)
  if status >= 300 then
    codes[status] = (codes[status] or 0) + 1
  end
end

function print_codes()
  local merged = {}
  for _, t in ipairs(threads) do
    for status, count in pairs(t:get("codes")) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(merged) do
    parts[#parts + 1] = status .. "=" .. count
  end
  io.write("PB_CODES " .. table.concat(parts, " ") .. "\n")
end

function print_result(summary, latency)
  local e = summary.errors
  io.write(string.format("PB_RESULT requests=%d duration_us=%d p50=%d p90=%d p95=%d p99=%d "
    .. "connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(95), latency:percentile(99), e.connect, e.read, e.write, e.status,
    e.timeout))
end
