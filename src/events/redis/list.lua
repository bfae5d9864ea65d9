-- list: a tenant's events after a seq, oldest first, optionally of some types.
-- ARGV: tenant, after, limit, n_types, types...
local tenant = next_arg()
local after = '(' .. next_arg()
local limit = tonumber(next_arg())
local n = tonumber(next_arg())
local seqs = {}
if n == 0 then
  seqs = redis.call('ZRANGEBYSCORE', k('ev:log:', lp(tenant)), after, '+inf', 'LIMIT', 0, limit)
else
  for _ = 1, n do
    local part = redis.call('ZRANGEBYSCORE', k('ev:logt:', lp(tenant), ':', next_arg()), after,
      '+inf', 'LIMIT', 0, limit)
    for _, s in ipairs(part) do seqs[#seqs + 1] = s end
  end
  table.sort(seqs, function(a, b) return tonumber(a) < tonumber(b) end)
end
local out = {}
for _, s in ipairs(seqs) do
  if #out >= limit then break end
  local row = event_row(tonumber(s))
  if row then out[#out + 1] = row end
end
return out
