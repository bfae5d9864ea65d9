-- dead_letters. ARGV: has_tenant, tenant, after, limit. Returns delivery rows.
local has_tenant, tenant = next_arg(), next_arg()
local after = '(' .. next_arg()
local limit = tonumber(next_arg())
local set = k('ev:dead')
if has_tenant == '1' then set = k('ev:deadt:', lp(tenant)) end
local out = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', set, after, '+inf', 'LIMIT', 0, limit)) do
  local row = delivery_row(tonumber(m))
  if row then out[#out + 1] = row end
end
return out
