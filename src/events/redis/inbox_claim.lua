-- inbox_claim: lease up to `limit` due items, the oldest pending one per connection.
-- ARGV: now, limit, leased_until. Returns inbox rows (with the new lease).
local now = tonumber(next_arg())
local limit = tonumber(next_arg())
local leased_until = tonumber(next_arg())
local out = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', IDUE, '-inf', num(now), 'LIMIT', 0, limit)) do
  local id = tonumber(m)
  local hash = k('ev:i:', num(id))
  local r = redis.call('HMGET', hash, 'st', 'nx')
  if r[1] ~= 'p' then
    redis.call('ZREM', IDUE, m)
  else
    redis.call('HINCRBY', hash, 'ls', 1)
    redis.call('HSET', hash, 'lu', num(leased_until))
    redis.call('ZADD', IDUE, math.max(tonumber(r[2]), leased_until), m)
    out[#out + 1] = inbox_row(id)
  end
end
return out
