#!lua
-- One GCRA step (crate::state::limit::gcra) on the server's clock, atomically.
-- KEYS[1]  the limit's key
-- ARGV     interval_ns, tolerance_ns, max_wait_ns (each below 2^52: exact in Lua's doubles)
-- Returns  {0, remaining, reset_ns}   allowed
--          {1, wait_ns, reset_ns}     reserved (the caller waits, then goes)
--          {2, retry_after_ns, reset_ns}  refused (nothing written)
--
-- The theoretical arrival time (TAT) is stored as "<epoch_s>:<offset_ns>" relative to the whole
-- second it was written in, and all arithmetic is relative to now: every number stays far
-- below 2^53, so the nanosecond arithmetic is exact. A key lives only until its TAT passes
-- (PX = TAT - now): an expired key is a full bucket.
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local time = redis.call('TIME')
local now_s = tonumber(time[1])
local now_ns = tonumber(time[2]) * 1000

local tat = 0
local stored = redis.call('GET', KEYS[1])
if stored then
  local sep = string.find(stored, ':', 1, true)
  if sep then
    local epoch = tonumber(string.sub(stored, 1, sep - 1))
    local offset = tonumber(string.sub(stored, sep + 1))
    if epoch and offset then
      tat = (epoch - now_s) * 1e9 + offset - now_ns
    end
  end
end

local base = math.max(tat, 0)
local new_tat = base + interval
local function store()
  redis.call('SET', KEYS[1], string.format('%.0f:%.0f', now_s, new_tat + now_ns),
    'PX', math.max(1, math.ceil(new_tat / 1e6)))
end

if new_tat <= tolerance then
  store()
  return {0, math.floor((tolerance - new_tat) / interval), new_tat}
end
local wait = new_tat - tolerance
if wait <= max_wait then
  store()
  return {1, wait, new_tat}
end
return {2, wait, base}
