-- inbox_backlog. Returns {pending, oldest received or false}.
local n = redis.call('ZCARD', k('ev:ipend'))
local first = redis.call('ZRANGE', k('ev:ipend'), 0, 0, 'WITHSCORES')
return {n, first[2] or false}
