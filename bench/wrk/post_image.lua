-- post_image.lua - wrk script: POST one file's bytes on every request (an image,
-- or the JSON latent for /decode)
-- (bench/serve_bench.sh uses it for /encode, /anomaly and /decode).
--
--   wrk -t2 -c16 -d10s --latency -s bench/wrk/post_image.lua \
--       http://127.0.0.1:PORT/encode -- FILE [CONTENT_TYPE]
--
-- CONTENT_TYPE defaults from FILE's extension (image/jpeg, image/png, ...).
-- Counts non-2xx replies per thread (wrk itself counts only status >= 400)
-- and keeps the first one's status and body. done() prints one
-- machine-readable line:
--   WRKRESULT requests=N duration_us=N bytes=N connect=N read=N write=N
--             status=N timeout=N non2xx=N p50_us=N p90_us=N p99_us=N
--             max_us=N mean_us=N
-- and, when there was a non-2xx reply, WRKFIRSTBAD <status> <body...>.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local function guess_type(path)
   local ext = string.lower(string.match(path, "%.([^./]+)$") or "")
   local types = {jpg = "image/jpeg", jpeg = "image/jpeg", png = "image/png",
                  bmp = "image/bmp", gif = "image/gif", tga = "image/x-tga",
                  json = "application/json"}
   return types[ext] or "application/octet-stream"
end

function init(args)
   local path = args[1]
   if not path then
      error("usage: wrk ... -s post_image.lua URL -- FILE [CONTENT_TYPE]")
   end
   local f = assert(io.open(path, "rb"))
   local data = f:read("*a")
   f:close()
   wrk.method = "POST"
   wrk.body = data
   wrk.headers["Content-Type"] = args[2] or guess_type(path)
   non2xx = 0
   first_bad = ""
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if first_bad == "" then
         first_bad = status .. " " .. string.sub(body or "", 1, 300)
      end
   end
end

function done(summary, latency, requests)
   local bad, first = 0, ""
   for _, t in ipairs(threads) do
      bad = bad + (t:get("non2xx") or 0)
      local fb = t:get("first_bad")
      if first == "" and fb and fb ~= "" then first = fb end
   end
   local e = summary.errors
   io.write(string.format(
      "WRKRESULT requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d" ..
      " timeout=%d non2xx=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%d\n",
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
      e.status, e.timeout, bad, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, latency.mean))
   if first ~= "" then
      io.write("WRKFIRSTBAD " .. string.gsub(first, "[\r\n]+", " ") .. "\n")
   end
end
