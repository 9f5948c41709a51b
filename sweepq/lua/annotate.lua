-- Set a few fields that belong to the running attempt (the SDK's marker, a preemption notice,
-- the run summary). Fenced: a superseded attempt writes nothing. Only these fields are writable.
-- KEYS: trial hash
-- ARGV: attempt, field, value, field, value...
-- Returns: 'ok' | 'stale' | 'refused'
if tonumber(redis.call('HGET', KEYS[1], 'attempt') or '-1') ~= tonumber(ARGV[1]) then return 'stale' end
local allowed = {sdk = true, preempting = true, summary = true}
for i = 2, #ARGV, 2 do
  if not allowed[ARGV[i]] then return 'refused' end
end
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 'ok'
