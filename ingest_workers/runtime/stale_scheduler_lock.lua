-- Free RQ's scheduler lock of a queue when its holder has stopped renewing it.
-- The holder renews it to its full TTL (ARGV[1] seconds) every second; a TTL below
-- ARGV[1] - ARGV[2] means ARGV[2] seconds without renewal: the holder is dead or cut off.
-- Redis's own clock measures it, so the hosts' clocks need not agree.
-- KEYS[1] = rq:scheduler-lock:QUEUE; returns 1 when the lock was freed.
local ttl = redis.call('TTL', KEYS[1])
if ttl >= 0 and ttl < tonumber(ARGV[1]) - tonumber(ARGV[2]) then
    redis.call('DEL', KEYS[1])
    return 1
end
return 0
