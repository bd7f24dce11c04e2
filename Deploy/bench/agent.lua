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
-- Each request's fixed part (request line and headers but the case) is formatted once per
-- thread; a request adds its case, its length and its body. Formatting every request whole in
-- Lua (wrk.format) cost wrk about 10 µs a lookup, on the cores Itaku and PostgreSQL share with it.
local heads = {}

function setup(thread)
  thread:set("offset", math.random(1, 100000))
end

function init(args)
  n = offset or 0
  wrk.headers["Authorization"] = "Bearer " .. (os.getenv("ITAKU_INTEGRATION_KEY") or "")
  wrk.headers["Itaku-Agent"] = os.getenv("ITAKU_AGENT_TOKEN")
  wrk.headers["Itaku-Purpose"] = os.getenv("ITAKU_BENCH_PURPOSE") or "bench-support"
  wrk.headers["Content-Type"] = "application/json"
  for _, method in ipairs({"GET", "POST", "PATCH"}) do
    -- "METHOD / HTTP/1.1\r\n" and the headers, without the blank line that ends them.
    heads[method] = wrk.format(method, "/"):sub(1, -3):gsub("^" .. method .. " / ", method .. " %%s ")
  end
end

-- The request line and headers of `path`, with `case` and a body of `body`'s length.
local function format(method, path, case, body)
  local head = heads[method]:format(path) .. "Itaku-Case: " .. case .. "\r\n"
  if body then return head .. "Content-Length: " .. #body .. "\r\n\r\n" .. body end
  return head .. "\r\n"
end

function request()
  n = n + 1
  if mode == "live" then
    return wrk.format("GET", "/livez")
  end
  local line = lines[(n % #lines) + 1]
  if mode == "lookup" then
    -- A new call, a new case.
    return format("POST", base .. "/lookup", "BENCH-" .. n, '{"by":"phone","value":"' .. line .. '"}')
  end
  local case, record = line:match("^(%S+) (%S+)$")
  if mode == "read" then
    return format("GET", base .. "/records/" .. record, case)
  end
  return format("PATCH", base .. "/records/" .. record, case, '{"fields":{"postal_code":"160-' .. string.format("%04d", n % 10000) .. '"}}')
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
