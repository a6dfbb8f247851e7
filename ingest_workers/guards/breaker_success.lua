-- A request succeeded: the circuit closes and the failure count restarts. KEYS[1]: the breaker's hash.
redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0, 'until', 0)
return 'closed'
