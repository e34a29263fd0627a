-- Sends requests in batches of `depth` (default 16) per write: HTTP/1.1 pipelining.
--   wrk -s benches/wrk/pipeline.lua URL -- 16
local batch

init = function(args)
  local depth = tonumber(args[1]) or 16
  local one = wrk.format(nil)
  batch = string.rep(one, depth)
end

request = function()
  return batch
end
