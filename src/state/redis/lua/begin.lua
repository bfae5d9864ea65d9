#!lua
-- Start a request that carries an Idempotency-Key, or say why not.
-- KEYS[1]  the record (a hash: f = request fingerprint, t = holder token, a = stored answer)
-- ARGV     fingerprint (hex), token, lease_ms
-- Returns  {'started'} | {'mismatch'} | {'replay', answer} | {'in_flight', lease_remaining_ms}
local r = redis.call('HMGET', KEYS[1], 'f', 't', 'a')
if not r[1] then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'f', ARGV[1], 't', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'started'}
end
if r[1] ~= ARGV[1] then
  return {'mismatch'}
end
if r[3] then
  return {'replay', r[3]}
end
return {'in_flight', redis.call('PTTL', KEYS[1])}
