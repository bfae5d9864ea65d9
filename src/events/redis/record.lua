-- record_attempt: only under the lease the delivery was claimed with.
-- ARGV: id, lease, kind (d delivered | r retry | x dead), at, next, has_status, status,
--       has_error, error, dead_reason. Returns 1 recorded, 0 lease lost or already final.
local d = tonumber(next_arg())
local lease = next_arg()
local kind = next_arg()
local at = tonumber(next_arg())
local next_at = tonumber(next_arg())
local has_status, status = next_arg(), next_arg()
local has_error, err = next_arg(), next_arg()
local reason = next_arg()
local hash = k('ev:d:', num(d))
local r = redis.call('HMGET', hash, 'st', 'ls', 't', 's', 'o', 'ev')
if r[1] ~= 'p' or r[2] ~= lease then return 0 end
redis.call('HINCRBY', hash, 'at', 1)
redis.call('HSET', hash, 'la', num(at), 'lu', '0')
if has_status == '1' then redis.call('HSET', hash, 'lst', status) else redis.call('HDEL', hash, 'lst') end
if has_error == '1' then redis.call('HSET', hash, 'le', err) else redis.call('HDEL', hash, 'le') end
local member = pad(d)
local queue = r[5] and queue_key(r[3], r[4], r[5])
if kind == 'r' then
  redis.call('HSET', hash, 'nx', num(next_at))
  -- Only a queue head waits in the due set (a replay may have put an earlier one in front).
  if not queue or is_head(queue, member) then
    redis.call('ZADD', DUE, next_at, member)
  end
  return 1
end
redis.call('HSET', hash, 'st', kind, 'nx', num(at), 'fin', num(at))
if kind == 'x' then
  redis.call('HSET', hash, 'dr', reason)
  redis.call('ZADD', k('ev:dead'), d, member)
  redis.call('ZADD', k('ev:deadt:', lp(r[3])), d, member)
end
redis.call('ZREM', DUE, member)
local ts = sub_key(r[3], r[4])
redis.call('ZREM', k('ev:pend:', ts), member)
if redis.call('ZCARD', k('ev:pend:', ts)) == 0 then
  redis.call('SREM', k('ev:pendsubs'), ts)
end
redis.call('HINCRBY', k('ev:e:', r[6]), 'pn', -1)
if queue then
  redis.call('ZREM', queue, member)
  promote(queue, DUE, 'ev:d:')
end
return 1
