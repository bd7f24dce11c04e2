-- wrk script (G1 of the benchmark): phone lookups with a verified agent token, phones drawn from the seeded customers in their
-- mixed formats (one per line in phones.txt).
-- Environment: ITAKU_INTEGRATION_KEY, ITAKU_AGENT_TOKEN (from .itaku/demo.env), PHONES (a file of phone
-- numbers, one per line), ITAKU_BENCH_PURPOSE (a purpose without volume limits; default bench-lookup).
local phones = {}
for line in io.lines(os.getenv("PHONES") or "phones.txt") do phones[#phones + 1] = line end
local n = 0
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ITAKU_INTEGRATION_KEY")
wrk.headers["Itaku-Agent"] = os.getenv("ITAKU_AGENT_TOKEN")
wrk.headers["Itaku-Purpose"] = os.getenv("ITAKU_BENCH_PURPOSE") or "bench-lookup"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local phone = phones[(n % #phones) + 1]
  wrk.headers["Itaku-Case"] = "BENCH-" .. n
  return wrk.format(nil, nil, nil, '{"by":"phone","value":"' .. phone .. '"}')
end
