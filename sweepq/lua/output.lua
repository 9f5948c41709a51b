-- Append lines of an attempt's stdout/stderr, keeping the last `cap` lines, each cut to 4 KiB so
-- a flood of long lines cannot fill Redis (the cap counts bytes as well as lines). Fenced: a
-- superseded attempt's output is dropped.
-- KEYS: trial hash, output list
-- ARGV: attempt, cap, line...
-- Returns: 'ok' | 'stale'
if tonumber(redis.call('HGET', KEYS[1], 'attempt') or '-1') ~= tonumber(ARGV[1]) then return 'stale' end
for i = 3, #ARGV do
  redis.call('RPUSH', KEYS[2], string.sub(ARGV[i], 1, 4096))
end
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
return 'ok'
