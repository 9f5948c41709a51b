-- The running attempt says it is alive; the answer carries any stop request.
-- With the claim's token, a runner whose claim another worker's claim of the same attempt
-- replaced gets 'stale' (it stops), and one whose claim Redis lost (the trial is queued again
-- at the same attempt, in a running or paused sweep) re-asserts it: the copy of the job that
-- the lost write put back in RQ's queue then finds the trial running and does nothing.
-- KEYS: prelude's seven.
-- ARGV: attempt, now, token ('' = no token check), worker, host
-- Returns: {state, stop request or ''}
local token = ARGV[3] or ''
local st = fenced(ARGV[1])
if st == 'queued' and token ~= '' then
  local sst = redis.call('HGET', sweep, 'state')
  if sst == 'running' or sst == 'paused' then
    redis.call('HSET', trial, 'worker', ARGV[4], 'host', ARGV[5], 'heartbeat', ARGV[2], 'token', token,
               'reason', 'claim re-asserted after Redis lost it')
    move('queued', 'running', ARGV[2])
    st = 'running'
  end
end
if st ~= 'running' then return {st, ''} end
local held = redis.call('HGET', trial, 'token')
if token ~= '' and held and held ~= token then return {'stale', ''} end
redis.call('HSET', trial, 'heartbeat', ARGV[2])
redis.call('ZADD', running, ARGV[2], redis.call('HGET', trial, 'number'))
return {st, redis.call('HGET', trial, 'stop') or ''}
