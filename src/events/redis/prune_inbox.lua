-- prune closed inbox items (done or given up) received before `before`, in batches.
-- ARGV: before, batch. Returns the number scanned (and removed).
local before = '(' .. next_arg()
local batch = tonumber(next_arg())
local members = redis.call('ZRANGEBYSCORE', k('ev:iclosed'), '-inf', before, 'LIMIT', 0, batch)
for _, m in ipairs(members) do
  local id = tonumber(m)
  local hash = k('ev:i:', num(id))
  local r = redis.call('HMGET', hash, 't', 'c', 'dd')
  if r[1] then
    local dedup = k('ev:idedup:', lp(r[1]), ':', r[2])
    if redis.call('HGET', dedup, r[3]) == num(id) then
      redis.call('HDEL', dedup, r[3])
    end
  end
  redis.call('DEL', hash)
  redis.call('ZREM', k('ev:iclosed'), m)
  redis.call('ZREM', k('ev:idead'), m)
end
return #members
