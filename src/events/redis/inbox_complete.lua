-- inbox_complete: close the item and store its events, atomically, under its lease.
-- ARGV: id, lease, now, n_events, events (read_event each).
-- Returns {'lost'} or {'done', result...} (each result as append_event's).
local id = tonumber(next_arg())
local lease = next_arg()
local now = tonumber(next_arg())
local hash = k('ev:i:', num(id))
local r = redis.call('HMGET', hash, 'st', 'ls', 't', 'c', 'rcv')
if r[1] ~= 'p' or r[2] ~= lease then return {'lost'} end
redis.call('HINCRBY', hash, 'at', 1)
redis.call('HSET', hash, 'st', 'd', 'lu', '0', 'fin', num(now), 'b', '')
redis.call('HDEL', hash, 'le')
inbox_close(id, hash, r[3], r[4], tonumber(r[5]))
local out = {'done'}
local stored = false
for _ = 1, tonumber(next_arg()) do
  local result = append_event(read_event())
  if result[1] == 'stored' then stored = true end
  out[#out + 1] = result
end
if stored then changed() end
return out
