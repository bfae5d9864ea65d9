-- replay. ARGV: kind (d delivery | e event | i inbox item), target, now. Returns the count requeued.
local kind, target = next_arg(), next_arg()
local now = tonumber(next_arg())
local n = 0
if kind == 'd' then
  n = replay_delivery(tonumber(target), now)
elseif kind == 'e' then
  local seq = redis.call('HGET', k('ev:id'), target)
  if seq then
    local list = redis.call('HGET', k('ev:e:', seq), 'dl') or ''
    for id in string.gmatch(list, '[^,]+') do
      n = n + replay_delivery(tonumber(id), now)
    end
  end
elseif kind == 'i' then
  local id = tonumber(target)
  local hash = k('ev:i:', num(id))
  local r = redis.call('HMGET', hash, 'st', 't', 'c', 'rcv')
  if r[1] == 'x' then
    redis.call('HSET', hash, 'st', 'p', 'nx', num(now), 'lu', '0')
    redis.call('HDEL', hash, 'fin')
    redis.call('ZREM', k('ev:idead'), pad(id))
    redis.call('ZREM', k('ev:iclosed'), pad(id))
    redis.call('ZADD', k('ev:ipend'), tonumber(r[4]), pad(id))
    enqueue(inbox_queue(r[2], r[3]), IDUE, id, now)
    n = 1
  end
end
if n > 0 then changed() end
return n
