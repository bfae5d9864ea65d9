-- backlog: pending deliveries per subscription. Returns {{"<lp tenant>:<sub>", count, oldest}...}.
local out = {}
for _, ts in ipairs(redis.call('SMEMBERS', k('ev:pendsubs'))) do
  local key = k('ev:pend:', ts)
  local n = redis.call('ZCARD', key)
  if n == 0 then
    redis.call('SREM', k('ev:pendsubs'), ts)
  else
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    out[#out + 1] = {ts, n, first[2]}
  end
end
return out
