-- Run an ended trial again with the same parameters, as a new attempt.
-- KEYS: prelude's seven.
-- ARGV: now, reason
-- Returns: reply('queued') | 'missing' | reply('closed') (the sweep is closed) |
--          reply(current state) (queued or running: nothing to do)
local st = redis.call('HGET', trial, 'state')
if not st then return {'missing'} end
if st == 'queued' or st == 'running' then return reply(st) end
if closed_sweep() then return reply('closed') end  -- reopen the sweep first (a cancel raced it)
new_attempt(tonumber(redis.call('HGET', trial, 'attempt')) + 1)
redis.call('HSET', trial, 'reason', ARGV[2])
move(st, 'queued', ARGV[1])
return reply('queued')
