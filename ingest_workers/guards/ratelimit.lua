-- GCRA: reserve the next request slot of one source, on Redis's clock.
-- KEYS[1]: the source's theoretical arrival time (TAT, microseconds).
-- ARGV[1]: emission interval (us); ARGV[2]: burst tolerance (us).
-- Returns the microseconds the caller waits before its request.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return wait
