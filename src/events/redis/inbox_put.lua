-- inbox_put. ARGV: tenant, connection, vendor, dedup, body, received.
-- Returns {'stored', id} or {'dup', id} (id 0: already an event).
local tenant, conn, vendor, dedup, body = next_arg(), next_arg(), next_arg(), next_arg(), next_arg()
local received = tonumber(next_arg())
local ck = lp(tenant) .. ':' .. conn
local existing = redis.call('HGET', k('ev:idedup:', ck), dedup)
if existing then return {'dup', tonumber(existing)} end
if redis.call('HEXISTS', k('ev:dedup:', ck), dedup) == 1 then return {'dup', 0} end
local id = redis.call('INCR', k('ev:iseq'))
redis.call('HSET', k('ev:i:', num(id)), 't', tenant, 'c', conn, 'v', vendor, 'dd', dedup, 'b', body,
  'rcv', num(received), 'st', 'p', 'at', '0', 'nx', num(received), 'ls', '0', 'lu', '0')
redis.call('HSET', k('ev:idedup:', ck), dedup, num(id))
redis.call('ZADD', k('ev:ipend'), received, pad(id))
enqueue(inbox_queue(tenant, conn), IDUE, id, received)
changed()
return {'stored', id}
