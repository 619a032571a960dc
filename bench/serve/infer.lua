-- wrk script for bench/serve/run_serve_bench.sh: POSTs the V2 JSON request in $BODY_FILE over
-- keep-alive, counts responses that are not 2xx (per thread, summed in done), and prints one JSON
-- line (prefixed "WRKJSON ") with throughput and latency percentiles in microseconds.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
  responses = 0
end

function response(status, headers, body)
  responses = responses + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad, seen = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non2xx")
    seen = seen + t:get("responses")
  end
  local secs = summary.duration / 1e6
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_s": %.3f, "rps": %.1f, "responses_seen": %d, ' ..
    '"non2xx": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d}, "mean_us": %.1f, "p50_us": %.1f, "p90_us": %.1f, "p99_us": %.1f, ' ..
    '"p999_us": %.1f, "max_us": %.1f}\n',
    summary.requests, secs, summary.requests / secs, seen, bad, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
