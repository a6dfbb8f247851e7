-- A request failed. KEYS[1]: the breaker's hash. ARGV[1]: failures that open the circuit; ARGV[2]: cool-down (ms).
-- Returns the new state: a failed probe, or the N-th failure in a row, opens the circuit.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'half_open' or failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'until', now + tonumber(ARGV[2]))
  return 'open'
end
return state
