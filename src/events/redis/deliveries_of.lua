-- deliveries_of. ARGV: event id. Returns delivery rows, by id.
local seq = redis.call('HGET', k('ev:id'), next_arg())
if not seq then return {} end
local out = {}
local list = redis.call('HGET', k('ev:e:', seq), 'dl') or ''
for id in string.gmatch(list, '[^,]+') do
  local row = delivery_row(tonumber(id))
  if row then out[#out + 1] = row end
end
return out
