-- wrk script for bench/peer/run.py: POSTs one GraphQL request (PEER_BODY, and
-- PEER_AUTHORIZATION when set) over and over, counts answers with GraphQL errors, and
-- prints the summary as one JSON line (latencies in microseconds).
wrk.method = "POST"
wrk.body = os.getenv("PEER_BODY")
wrk.headers["Content-Type"] = "application/json"
local authorization = os.getenv("PEER_AUTHORIZATION")
if authorization and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  graphql_errors = 0
end

-- A GraphQL error usually comes with status 200: look for it in the body.
function response(status, headers, body)
  if string.find(body, '"errors"', 1, true) then
    graphql_errors = graphql_errors + 1
  end
end

function done(summary, latency, requests)
  local graphql = 0
  for _, thread in ipairs(threads) do
    graphql = graphql + thread:get("graphql_errors")
  end
  local e = summary.errors
  io.write(string.format(
    'PEER_SUMMARY {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d, "graphql": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout, e.status, graphql))
end
