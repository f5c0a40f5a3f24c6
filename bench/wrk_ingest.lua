-- wrk script for bench/ingest.py: POST /v1/events with unique event ids.
--
-- Configuration comes from the environment (set by ingest.py):
--   BENCH_POOL    file with one event per line: its JSON without the leading '{' (no id)
--   BENCH_PREFIX  id prefix for this scenario (ids are PREFIX-t<thread>-r<request>:<index>)
--   BENCH_BATCH   0 = one event per request (the event itself is the body);
--                 N = {"events": [N events]} per request
--   BENCH_KEY     API key (Bearer)
--   BENCH_LOG     per-thread response log: "<status> <request tag> <accepted>" per response
--   BENCH_OUT     summary JSON written by done()
--
-- Every request gets a fresh tag from a per-thread counter, so no id is ever sent twice.

local threads = {}
local nthreads = 0

function setup(thread)
   nthreads = nthreads + 1
   thread:set("tnum", nthreads)
   table.insert(threads, thread)
end

local pool = {}
local prefix, batch, headers, logf
counter = 0

function init(args)
   for line in io.lines(os.getenv("BENCH_POOL")) do
      pool[#pool + 1] = line
   end
   prefix = os.getenv("BENCH_PREFIX") .. "-t" .. tnum
   batch = tonumber(os.getenv("BENCH_BATCH"))
   headers = {
      ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY"),
      ["Content-Type"] = "application/json",
   }
   logf = io.open(os.getenv("BENCH_LOG") .. "-t" .. tnum, "w")
   logf:setvbuf("line")
end

function request()
   counter = counter + 1
   local tag = string.format("%s-r%07d", prefix, counter)
   local body
   if batch == 0 then
      body = '{"id":"' .. tag .. ':000",' .. pool[(counter % #pool) + 1]
   else
      local parts = {}
      local base = counter * batch
      for i = 0, batch - 1 do
         parts[i + 1] = string.format('{"id":"%s:%03d",', tag, i) .. pool[((base + i) % #pool) + 1]
      end
      body = '{"events":[' .. table.concat(parts, ",") .. ']}'
   end
   return wrk.format("POST", "/v1/events", headers, body)
end

function response(status, hdrs, body)
   local tag = string.match(body, '"id":"([^":]+):') or "-"
   local accepted = string.match(body, '"accepted":(%d+)')
   if accepted == nil then
      -- a single event answers {"id":..., "status": "accepted"|"duplicate", "seq": N}
      accepted = (status == 201) and "1" or "0"
   end
   logf:write(status, " ", tag, " ", accepted, "\n")
end

function done(summary, latency, requests)
   local sent = 0
   for _, t in ipairs(threads) do
      sent = sent + t:get("counter")
   end
   local e = summary.errors
   local out = io.open(os.getenv("BENCH_OUT"), "w")
   out:write(string.format(
      '{"duration_us": %d, "requests": %d, "bytes": %d, "sent": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
      summary.duration, summary.requests, summary.bytes, sent,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
   out:close()
end
