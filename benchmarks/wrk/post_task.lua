-- POST /projects/{id}/tasks: creates a task per request (bearer token from PB_TOKEN).
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("PB_TOKEN")
wrk.headers["Content-Type"] = "application/json"

local counter = 0

function setup(thread)
  track(thread)
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"title": "bench task %d", "status": "todo", "complexity": "low", "estimate_hours": 2}',
    counter)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  count_status(status)
end

function done(summary, latency, requests)
  print_codes()
  print_result(summary, latency)
end
