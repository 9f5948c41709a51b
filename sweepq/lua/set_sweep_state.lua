-- Move a sweep between states only from the states allowed, so two commands cannot interleave.
-- KEYS: sweep hash, events stream
-- ARGV: new state, reason, now, waive failures ('1': a person resumed after the fail pause, so
--       it never pauses again; '0'), who moved it ('user' | 'sweepq'), allowed current states
--       (one or more)
-- Returns: 'ok' | the current state when the move is not allowed
local cur = redis.call('HGET', KEYS[1], 'state')
for i = 6, #ARGV do
  if cur == ARGV[i] then
    redis.call('HSET', KEYS[1], 'state', ARGV[1], 'state_reason', ARGV[2], 'state_at', ARGV[3], 'state_by', ARGV[5])
    if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'failures_waived', 1) end
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'sweep', ARGV[1])
    return 'ok'
  end
end
return cur or 'missing'
