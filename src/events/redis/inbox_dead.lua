-- inbox_dead. ARGV: after, limit. Returns inbox rows, by id.
local after = '(' .. next_arg()
local limit = tonumber(next_arg())
local out = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', k('ev:idead'), after, '+inf', 'LIMIT', 0, limit)) do
  local row = inbox_row(tonumber(m))
  if row then out[#out + 1] = row end
end
return out
