#!lua flags=allow-oom
-- Compare-and-delete: drop the in-flight lock only if this holder still holds it. Allowed when
-- Redis is out of memory (it only frees memory), so a failed completion can still release.
-- KEYS[1]  the record
-- ARGV     token
-- Returns  1 released, 0 not held (lost, completed, or gone)
local r = redis.call('HMGET', KEYS[1], 't', 'a')
if r[1] ~= ARGV[1] or r[2] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
