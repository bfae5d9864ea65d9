-- inbox_failed: due again at retry_at, or given up. Under the lease only.
-- ARGV: id, lease, has_retry, retry_at, error, now. Returns 1 recorded, 0 lease lost.
local id = tonumber(next_arg())
local lease = next_arg()
local has_retry, retry_at = next_arg(), tonumber(next_arg())
local err = next_arg()
local now = tonumber(next_arg())
local hash = k('ev:i:', num(id))
local r = redis.call('HMGET', hash, 'st', 'ls', 't', 'c', 'rcv')
if r[1] ~= 'p' or r[2] ~= lease then return 0 end
redis.call('HINCRBY', hash, 'at', 1)
redis.call('HSET', hash, 'lu', '0', 'le', err)
if has_retry == '1' then
  redis.call('HSET', hash, 'nx', num(retry_at))
  if is_head(inbox_queue(r[3], r[4]), pad(id)) then
    redis.call('ZADD', IDUE, retry_at, pad(id))
  end
  return 1
end
redis.call('HSET', hash, 'st', 'x', 'fin', num(now))
inbox_close(id, hash, r[3], r[4], tonumber(r[5]))
redis.call('ZADD', k('ev:idead'), id, pad(id))
return 1
