-- prune: forget events created before `before` that have nothing pending, in batches.
-- ARGV: before, offset (pending ones skipped so far), batch. Returns {removed, skipped, scanned}.
local before = '(' .. next_arg()
local offset = tonumber(next_arg())
local batch = tonumber(next_arg())
local seqs = redis.call('ZRANGEBYSCORE', k('ev:age'), '-inf', before, 'LIMIT', offset, batch)
local removed, skipped = 0, 0
for _, s in ipairs(seqs) do
  local event = k('ev:e:', s)
  local e = redis.call('HMGET', event, 't', 'ty', 'id', 'dd', 'c', 'pn', 'dl')
  if not e[1] then
    redis.call('ZREM', k('ev:age'), s)
  elseif tonumber(e[6]) > 0 then
    skipped = skipped + 1
  else
    for id in string.gmatch(e[7] or '', '[^,]+') do
      local hash = k('ev:d:', id)
      if redis.call('HGET', hash, 'st') == 'x' then
        redis.call('ZREM', k('ev:dead'), pad(tonumber(id)))
        redis.call('ZREM', k('ev:deadt:', lp(e[1])), pad(tonumber(id)))
      end
      redis.call('DEL', hash)
    end
    redis.call('ZREM', k('ev:log:', lp(e[1])), s)
    redis.call('ZREM', k('ev:logt:', lp(e[1]), ':', e[2]), s)
    redis.call('HDEL', k('ev:id'), e[3])
    redis.call('HDEL', k('ev:dedup:', lp(e[1]), ':', e[5]), e[4])
    redis.call('ZREM', k('ev:age'), s)
    redis.call('DEL', event)
    removed = removed + 1
  end
end
return {removed, skipped, #seqs}
