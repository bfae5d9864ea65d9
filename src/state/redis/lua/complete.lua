#!lua
-- Finish a started request, only while this holder still holds it in flight.
-- KEYS[1]  the record
-- ARGV     token, store ('1' keep the answer for replay | '0' release), answer, ttl_ms
-- Returns  'stored' | 'released' | 'lost'
local r = redis.call('HMGET', KEYS[1], 't', 'a')
if r[1] ~= ARGV[1] or r[2] then
  return 'lost'
end
if ARGV[2] ~= '1' then
  redis.call('DEL', KEYS[1])
  return 'released'
end
redis.call('HSET', KEYS[1], 'a', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 'stored'
