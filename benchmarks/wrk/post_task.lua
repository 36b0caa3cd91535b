-- POST /projects/{id}/tasks: creates a task per request (bearer token from PB_TOKEN).
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("PB_TOKEN")
wrk.headers["Content-Type"] = "application/json"

local counter = 0
local threads = {}
codes = {}

function setup(thread)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"title": "bench task %d", "status": "todo", "complexity": "low", "estimate_hours": 2}',
    counter)
  return wrk.format(nil, nil, nil, body)
end

-- non-2xx responses by status code, gathered from every thread at the end

function response(status, headers, body)
  if status >= 300 then
    codes[status] = (codes[status] or 0) + 1
  end
end

local function print_codes()
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

function done(summary, latency, requests)
  print_codes()
  local e = summary.errors
  io.write(string.format("PB_RESULT requests=%d duration_us=%d p50=%d p90=%d p95=%d p99=%d "
    .. "connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(95), latency:percentile(99), e.connect, e.read, e.write, e.status,
    e.timeout))
end
