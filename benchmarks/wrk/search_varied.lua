-- GET /api/v1/search?q=task+<n> with a different <n> (1..PB_SEARCH_SPREAD) on every
-- request, so answers are not served from the search cache: the uncached search path.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("PB_TOKEN")

local spread = tonumber(os.getenv("PB_SEARCH_SPREAD") or "2000")
local counter = 0
thread_no = 0
local next_thread = 0

function setup(thread)
  thread:set("thread_no", next_thread)
  track(thread)
  next_thread = next_thread + 1
end

function request()
  counter = counter + 1
  local n = ((counter * 7919 + thread_no * 104729) % spread) + 1
  return wrk.format(nil, "/api/v1/search?q=task+" .. n)
end

function done(summary, latency, requests)
  print_result(summary, latency)
end
