-- wrk script of the benchmark (Deploy/bench/run): the agent API as an agent desktop calls it,
-- with a verified agent token and a purpose, each request under a case.
-- Environment:
--   BENCH_MODE             lookup (G1), read (G2), update (G3) or live (H0: GET /livez)
--   BENCH_FILE             lookup: phone numbers, one per line, as written in the imported CSV
--                          (mixed formats); read/update: "case record_id" lines of bound records
--   BENCH_RESULT           where to write the figures as JSON
--   ITAKU_INTEGRATION_KEY, ITAKU_AGENT_TOKEN, ITAKU_BENCH_PURPOSE, ITAKU_BENCH_DATASET
local mode = os.getenv("BENCH_MODE") or "lookup"
local lines = {}
if mode ~= "live" then
  for line in io.lines(os.getenv("BENCH_FILE")) do lines[#lines + 1] = line end
end
local dataset = os.getenv("ITAKU_BENCH_DATASET") or "callers"
local base = "/v1/tenants/acme-retail/datasets/" .. dataset
local n = 0

function setup(thread)
  thread:set("offset", math.random(1, 100000))
end

function init(args)
  n = offset or 0
  wrk.headers["Authorization"] = "Bearer " .. (os.getenv("ITAKU_INTEGRATION_KEY") or "")
  wrk.headers["Itaku-Agent"] = os.getenv("ITAKU_AGENT_TOKEN")
  wrk.headers["Itaku-Purpose"] = os.getenv("ITAKU_BENCH_PURPOSE") or "bench-support"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  if mode == "live" then
    return wrk.format("GET", "/livez")
  end
  local line = lines[(n % #lines) + 1]
  if mode == "lookup" then
    -- A new call, a new case.
    wrk.headers["Itaku-Case"] = "BENCH-" .. n
    return wrk.format("POST", base .. "/lookup", nil, '{"by":"phone","value":"' .. line .. '"}')
  end
  local case, record = line:match("^(%S+) (%S+)$")
  wrk.headers["Itaku-Case"] = case
  if mode == "read" then
    return wrk.format("GET", base .. "/records/" .. record)
  end
  return wrk.format("PATCH", base .. "/records/" .. record, nil, '{"fields":{"postal_code":"160-' .. string.format("%04d", n % 10000) .. '"}}')
end

function done(summary, latency, requests)
  local file = io.open(os.getenv("BENCH_RESULT"), "w")
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  file:write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"failed":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, summary.errors.status, errors))
  file:close()
end
