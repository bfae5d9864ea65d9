#!lua
-- Shared by every event-store script (crate::events::redis_store), prepended to each one.
-- ARGV[1] is the deployment's key prefix, ARGV[2] the calling store's origin (published with
-- change messages so a store skips its own); each script reads its own arguments after them,
-- through next_arg(). Keys are derived here (standalone Redis/Valkey; see the Rust docs).
--
-- Key layout (P = prefix; lp(s) = "<byte length>:<s>", so no name can make two keys collide):
--   P ev:seq, P ev:dseq, P ev:iseq          counters: event seq, delivery id, inbox id
--   P ev:e:<seq>         hash  event: id t c ty dd o ca b pn (pending deliveries) dl (delivery ids)
--   P ev:log:<lp t>      zset  the tenant's events, score = member = seq
--   P ev:logt:<lp t>:<type>  zset  the same per event type
--   P ev:id              hash  event id -> seq
--   P ev:dedup:<lp t>:<c>    hash  vendor dedup key -> seq
--   P ev:age             zset  seq by created_at (prune)
--   P ev:d:<id>          hash  delivery: ev t s o st(p|d|x) at ws nx ls lu la lst le dr fin ca
--   P ev:q:<lp t>:<lp s>:<order key>  zset  pending deliveries of one ordered queue, by id
--   P ev:due             zset  queue heads (and unordered deliveries), score = max(nx, lu)
--   P ev:pend:<lp t>:<s> zset  pending deliveries of a subscription, score = event created_at
--   P ev:pendsubs        set   the <lp t>:<s> that have pending deliveries
--   P ev:dead, P ev:deadt:<lp t>  zset  dead deliveries by id (all, per tenant)
--   P ev:i:<id>          hash  inbox item: t c v dd b rcv st at nx ls lu le fin
--   P ev:idedup:<lp t>:<c>   hash  dedup key -> inbox id
--   P ev:iq:<lp t>:<c>   zset  pending items of a connection, by id
--   P ev:idue            zset  inbox queue heads, score = max(nx, lu)
--   P ev:ipend           zset  pending items by received_at
--   P ev:idead           zset  given-up items by id
--   P ev:iclosed         zset  done or given-up items by received_at (prune)
--   P ev:state           hash  poller state
--   channel P ev:changes      the origin, after every store, requeue or inbox put
-- Members of the queue and due sets are ids zero-padded to 20 digits, so equal scores order
-- by id. Numbers written to Redis go through num(): Lua's own tostring would print 1.75e+12.
local P = ARGV[1]
local ORIGIN = ARGV[2]
local arg_at = 2
local function next_arg()
  arg_at = arg_at + 1
  return ARGV[arg_at]
end
local function num(x) return string.format('%.0f', x) end
local function pad(x) return string.format('%020.0f', x) end
local function lp(s) return #s .. ':' .. s end
local function k(...) return P .. table.concat({...}) end

local DUE = k('ev:due')
local IDUE = k('ev:idue')

local function changed()
  redis.call('PUBLISH', k('ev:changes'), ORIGIN)
end

local function queue_key(tenant, sub, order_key)
  return k('ev:q:', lp(tenant), ':', lp(sub), ':', order_key)
end

local function sub_key(tenant, sub)
  return lp(tenant) .. ':' .. sub
end

-- The score a pending delivery or inbox item sits at in its due set.
local function due_score(hash)
  local r = redis.call('HMGET', hash, 'nx', 'lu')
  return math.max(tonumber(r[1]) or 0, tonumber(r[2]) or 0)
end

local function is_head(queue, member)
  return redis.call('ZRANGE', queue, 0, 0)[1] == member
end

-- Put the queue's head (if any) into the due set.
local function promote(queue, due, hash_prefix)
  local head = redis.call('ZRANGE', queue, 0, 0)[1]
  if head then
    redis.call('ZADD', due, due_score(k(hash_prefix, num(tonumber(head)))), head)
  end
end

-- Add a pending member to its queue; keep only the head in the due set.
local function enqueue(queue, due, id, score)
  local member = pad(id)
  local old = redis.call('ZRANGE', queue, 0, 0)[1]
  redis.call('ZADD', queue, id, member)
  local new = redis.call('ZRANGE', queue, 0, 0)[1]
  if old and old ~= new then
    redis.call('ZREM', due, old)
  end
  if new == member then
    redis.call('ZADD', due, score, member)
  end
end

-- Read one event's arguments: id, tenant, connection, type, dedup, has_order, order, created,
-- body, n_subs, subs...
local function read_event()
  local e = {}
  e.id = next_arg()
  e.tenant = next_arg()
  e.conn = next_arg()
  e.type = next_arg()
  e.dedup = next_arg()
  local has_order = next_arg()
  local order = next_arg()
  if has_order == '1' then e.order = order end
  e.created = tonumber(next_arg())
  e.body = next_arg()
  e.subs = {}
  local n = tonumber(next_arg())
  for i = 1, n do
    e.subs[i] = next_arg()
  end
  return e
end

-- Store an event and its deliveries unless its dedup key is known.
-- Returns {'stored', seq, deliveries} or {'dup', first id, first seq}.
local function append_event(e)
  local dedup_key = k('ev:dedup:', lp(e.tenant), ':', e.conn)
  local existing = redis.call('HGET', dedup_key, e.dedup)
  if existing then
    local first = redis.call('HGET', k('ev:e:', existing), 'id')
    return {'dup', first, tonumber(existing)}
  end
  local seq = redis.call('INCR', k('ev:seq'))
  local ids = {}
  for _, sub in ipairs(e.subs) do
    local d = redis.call('INCR', k('ev:dseq'))
    ids[#ids + 1] = num(d)
    local hash = k('ev:d:', num(d))
    redis.call('HSET', hash, 'ev', num(seq), 't', e.tenant, 's', sub, 'st', 'p', 'at', '0',
      'ws', num(e.created), 'nx', num(e.created), 'ls', '0', 'lu', '0', 'ca', num(e.created))
    local ts = sub_key(e.tenant, sub)
    redis.call('ZADD', k('ev:pend:', ts), e.created, pad(d))
    redis.call('SADD', k('ev:pendsubs'), ts)
    if e.order then
      redis.call('HSET', hash, 'o', e.order)
      enqueue(queue_key(e.tenant, sub, e.order), DUE, d, e.created)
    else
      redis.call('ZADD', DUE, e.created, pad(d))
    end
  end
  local event = k('ev:e:', num(seq))
  redis.call('HSET', event, 'id', e.id, 't', e.tenant, 'c', e.conn, 'ty', e.type, 'dd', e.dedup,
    'ca', num(e.created), 'b', e.body, 'pn', num(#ids), 'dl', table.concat(ids, ','))
  if e.order then
    redis.call('HSET', event, 'o', e.order)
  end
  redis.call('ZADD', k('ev:log:', lp(e.tenant)), seq, num(seq))
  redis.call('ZADD', k('ev:logt:', lp(e.tenant), ':', e.type), seq, num(seq))
  redis.call('HSET', k('ev:id'), e.id, num(seq))
  redis.call('HSET', dedup_key, e.dedup, num(seq))
  redis.call('ZADD', k('ev:age'), e.created, num(seq))
  return {'stored', seq, #ids}
end

-- An event as the store returns it: {seq, id, tenant, connection, type, order|false, created, body}.
local function event_row(seq)
  local r = redis.call('HMGET', k('ev:e:', num(seq)), 'id', 't', 'c', 'ty', 'o', 'ca', 'b')
  if not r[1] then return false end
  return {num(seq), r[1], r[2], r[3], r[4], r[5], r[6], r[7]}
end

-- A delivery as an operator sees it (crate::events::store::DeliveryRecord's field order).
local function delivery_row(d)
  local r = redis.call('HMGET', k('ev:d:', num(d)), 'ev', 't', 's', 'o', 'st', 'at', 'nx', 'la',
    'lst', 'le', 'dr', 'fin')
  if not r[1] then return false end
  local e = redis.call('HMGET', k('ev:e:', r[1]), 'id', 'ty', 'c', 'ca')
  if not e[1] then return false end
  return {num(d), r[2], r[3], e[1], e[2], e[3], r[4], e[4], r[5], r[6], r[7], r[8], r[9], r[10],
    r[11], r[12]}
end

-- Put a dead delivery back in its queue, due at `now`, with a fresh retry window.
local function replay_delivery(d, now)
  local hash = k('ev:d:', num(d))
  local r = redis.call('HMGET', hash, 'st', 't', 's', 'o', 'ev', 'ca')
  if r[1] ~= 'x' then return 0 end
  redis.call('HSET', hash, 'st', 'p', 'nx', num(now), 'ws', num(now), 'lu', '0')
  redis.call('HDEL', hash, 'dr', 'fin')
  redis.call('ZREM', k('ev:dead'), pad(d))
  redis.call('ZREM', k('ev:deadt:', lp(r[2])), pad(d))
  local ts = sub_key(r[2], r[3])
  redis.call('ZADD', k('ev:pend:', ts), tonumber(r[6]), pad(d))
  redis.call('SADD', k('ev:pendsubs'), ts)
  redis.call('HINCRBY', k('ev:e:', r[5]), 'pn', 1)
  if r[4] then
    enqueue(queue_key(r[2], r[3], r[4]), DUE, d, now)
  else
    redis.call('ZADD', DUE, now, pad(d))
  end
  return 1
end

-- An inbox item: {id, tenant, connection, vendor, dedup, body, received, attempts, last_error|false, lease}.
local function inbox_row(id)
  local r = redis.call('HMGET', k('ev:i:', num(id)), 't', 'c', 'v', 'dd', 'b', 'rcv', 'at', 'le', 'ls')
  if not r[1] then return false end
  return {num(id), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9]}
end

local function inbox_queue(tenant, conn)
  return k('ev:iq:', lp(tenant), ':', conn)
end

-- Close an inbox item (done or dead): out of its queue, next one up.
local function inbox_close(id, hash, r_tenant, r_conn, received)
  redis.call('ZREM', IDUE, pad(id))
  local queue = inbox_queue(r_tenant, r_conn)
  redis.call('ZREM', queue, pad(id))
  promote(queue, IDUE, 'ev:i:')
  redis.call('ZREM', k('ev:ipend'), pad(id))
  redis.call('ZADD', k('ev:iclosed'), received, pad(id))
end
