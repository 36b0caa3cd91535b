-- PATCH /tasks/{id} {"status": ...} alternating todo/in_progress, no If-Match.
-- PB_TASK_IDS: comma-separated task ids, taken in turn (bearer token from PB_TOKEN).
wrk.method = "PATCH"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("PB_TOKEN")
wrk.headers["Content-Type"] = "application/json"

local ids = {}
for id in string.gmatch(os.getenv("PB_TASK_IDS"), "[^,]+") do
  ids[#ids + 1] = id
end
local statuses = {"in_progress", "todo"}
local counter = 0
thread_no = 0  -- set per thread by setup()
local next_thread = 0
local threads = {}
codes = {}

function setup(thread)
  thread:set("thread_no", next_thread)
  table.insert(threads, thread)
  next_thread = next_thread + 1
end

function request()
  -- each thread walks its own half of the ids, so two threads never fight over one task
  local index = (counter * 2 + thread_no) % #ids
  local round = math.floor((counter * 2 + thread_no) / #ids)
  counter = counter + 1
  local body = '{"status": "' .. statuses[(round % 2) + 1] .. '"}'
  return wrk.format(nil, "/api/v1/tasks/" .. ids[index + 1], nil, body)
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
