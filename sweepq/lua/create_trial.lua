-- Create trial `number` of a sweep, queued, iff the sweep is running, `number` is the sweep's
-- next number (compare-and-set: one writer wins) and the cap (run_cap / --count) is not reached.
-- KEYS: prelude's seven.
-- ARGV: number, params json, encoded json, now, the owner's signature (sweepq.trust)
-- Returns: {'ok', the events stream's last id before this trial's event ('' if none), that
-- event's id} | 'closed' (sweep not running) | 'race' | 'cap'. The two ids let the planner step
-- over its own 'queued' event when nobody else's came before it.
local number, now = tonumber(ARGV[1]), ARGV[4]
if redis.call('HGET', sweep, 'state') ~= 'running' then return 'closed' end
local nextn = tonumber(redis.call('HGET', sweep, 'next') or '0')
if number ~= nextn then return 'race' end
local cap = tonumber(redis.call('HGET', sweep, 'cap') or '')
if cap and nextn >= cap then return 'cap' end
redis.call('HSET', sweep, 'next', nextn + 1)
redis.call('HSET', trial, 'number', number, 'params', ARGV[2], 'encoded', ARGV[3],
           'attempt', 1, 'job_id', job_id(number, 1), 'created_at', now, 'sig', ARGV[5] or '')
local last = redis.call('XREVRANGE', events, '+', '-', 'COUNT', 1)
local event = move(false, 'queued', now)
return {'ok', last[1] and last[1][1] or '', event}
