-- claim_due: lease up to `limit` due queue heads.
-- ARGV: now, limit, leased_until. Returns {{id, tenant, sub, attempts, window_start, lease, event_row}...}
local now = tonumber(next_arg())
local limit = tonumber(next_arg())
local leased_until = tonumber(next_arg())
local members = redis.call('ZRANGEBYSCORE', DUE, '-inf', num(now), 'LIMIT', 0, limit)
local out = {}
for _, m in ipairs(members) do
  local d = tonumber(m)
  local hash = k('ev:d:', num(d))
  local r = redis.call('HMGET', hash, 'st', 't', 's', 'at', 'ws', 'ev', 'nx')
  local row = r[1] == 'p' and event_row(tonumber(r[6]))
  if not row then
    redis.call('ZREM', DUE, m)
  else
    local lease = redis.call('HINCRBY', hash, 'ls', 1)
    redis.call('HSET', hash, 'lu', num(leased_until))
    redis.call('ZADD', DUE, math.max(tonumber(r[7]), leased_until), m)
    out[#out + 1] = {num(d), r[2], r[3], r[4], r[5], lease, row}
  end
end
return out
