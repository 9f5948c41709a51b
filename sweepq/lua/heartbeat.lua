-- The running attempt says it is alive; the answer carries any stop request.
-- KEYS: prelude's seven.
-- ARGV: attempt, now
-- Returns: {state, stop request or ''}
local st = fenced(ARGV[1])
if st ~= 'running' then return {st, ''} end
redis.call('HSET', trial, 'heartbeat', ARGV[2])
redis.call('ZADD', running, ARGV[2], redis.call('HGET', trial, 'number'))
return {st, redis.call('HGET', trial, 'stop') or ''}
