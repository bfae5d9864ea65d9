-- append: one event and its deliveries. ARGV after the prefix: one event (read_event).
local r = append_event(read_event())
if r[1] == 'stored' then changed() end
return r
