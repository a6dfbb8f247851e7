-- May the source be called? KEYS[1]: the breaker's hash. ARGV[1]: probe timeout (ms).
-- Returns {state, ms to wait (0: go ahead)}; an open circuit whose cool-down is over lets one probe through.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'closed' then return {state, 0} end
local until_ms = tonumber(redis.call('HGET', KEYS[1], 'until') or 0)
if now < until_ms then return {state, until_ms - now} end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'until', now + tonumber(ARGV[1]))
return {'half_open', 0}
