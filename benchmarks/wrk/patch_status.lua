-- PATCH /tasks/{id} {"status": ...} alternating todo/in_progress, no If-Match.
-- PB_TASK_IDS: comma-separated task ids, taken in turn (bearer token from PB_TOKEN).
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")
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

function setup(thread)
  thread:set("thread_no", next_thread)
  track(thread)
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

function response(status, headers, body)
  count_status(status)
end

function done(summary, latency, requests)
  print_codes()
  print_result(summary, latency)
end
