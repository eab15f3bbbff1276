-- wrk script: POST the body in $BENCH_BODY to the URL's path, print one JSON line at the end.
--   BENCH_BODY='{"model":"...","messages":[...]}' wrk -s bench/post.lua ...
-- Optional: BENCH_LIMIT=N stops each thread after N / threads responses (a bounded soak),
-- and BENCH_TOKEN sets a bearer token.

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"model":"mock-model","messages":[{"role":"user","content":"Hi"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "sk-bench")

local limit = tonumber(os.getenv("BENCH_LIMIT") or "0")
local threads = tonumber(os.getenv("BENCH_THREADS") or "1")

if limit > 0 then
   local per_thread = math.ceil(limit / threads)
   local seen = 0
   function response(status, headers, body)
      seen = seen + 1
      if seen >= per_thread then
         wrk.thread:stop()
      end
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
