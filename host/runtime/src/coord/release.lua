-- Releases a lock only if the caller still holds it: compare the value (the holder's random
-- token) and delete, atomically. A holder whose lock expired and was taken by another must not
-- delete the new holder's lock.
-- KEYS[1] = the lock, ARGV[1] = the holder's token. Returns 1 if released, 0 otherwise.
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
