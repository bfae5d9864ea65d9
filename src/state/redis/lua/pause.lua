#!lua
-- Pause a connection for ARGV[1] ms; a pause only grows.
-- KEYS[1]  the pause key
-- Returns  the pause now in force, ms
local current = redis.call('PTTL', KEYS[1])
local want = tonumber(ARGV[1])
if current < want then
  redis.call('SET', KEYS[1], '1', 'PX', want)
  return want
end
return current
