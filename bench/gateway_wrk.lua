-- wrk script of bench_gateway.py: POST one JSON body, then print one JSON line of results.
--
-- Environment: KAKIN_BENCH_BODY (file holding the request body), KAKIN_BENCH_KEY (sent as
-- "Authorization: Bearer ..." when set), KAKIN_BENCH_SIMULATE (x-kakin-simulate header, optional),
-- KAKIN_BENCH_SPREAD_MS with KAKIN_BENCH_CONNECTIONS (start the connections evenly over that
-- many milliseconds, optional; wrk starts each latency clock after the delay).
-- Latencies are in microseconds, from wrk's own histogram.

local file = assert(io.open(os.getenv("KAKIN_BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"

local key = os.getenv("KAKIN_BENCH_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
local simulate = os.getenv("KAKIN_BENCH_SIMULATE")
if simulate and simulate ~= "" then
  wrk.headers["x-kakin-simulate"] = simulate
end

-- With a constant upstream latency, connections started together stay in step: each hop would
-- see every connection's request at once. Delaying each connection's first request keeps them apart.
local spread_ms = tonumber(os.getenv("KAKIN_BENCH_SPREAD_MS") or "")
local connections = tonumber(os.getenv("KAKIN_BENCH_CONNECTIONS") or "")
if spread_ms and connections then
  local started = 0
  delay = function()
    if started >= connections then
      return 0
    end
    started = started + 1
    return (started - 1) * spread_ms / connections
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, '
      .. '"timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max
  ))
end
