-- GET with an optional bearer token (PB_TOKEN); prints exact percentiles at the end.
local token = os.getenv("PB_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
wrk.method = "GET"

dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

function done(summary, latency, requests)
  print_result(summary, latency)
end
