-- Extends a lock only if the caller still holds it (compare, then set a new expiry).
-- KEYS[1] = the lock, ARGV[1] = the holder's token, ARGV[2] = the new time to live in ms.
-- Returns 1 if extended, 0 otherwise.
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
