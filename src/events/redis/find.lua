-- find: one of the tenant's events by id. ARGV: tenant, event id. Returns {} or {row}.
local tenant = next_arg()
local seq = redis.call('HGET', k('ev:id'), next_arg())
if not seq then return {} end
local row = event_row(tonumber(seq))
if not row or row[3] ~= tenant then return {} end
return {row}
