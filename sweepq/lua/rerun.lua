-- Run an ended trial again with the same parameters, as a new attempt.
-- KEYS: prelude's five, KEYS[6] the trial's history list.
-- ARGV: job id, now, reason
-- Returns: 'queued' | 'missing' | current state (queued or running: nothing to do)
local st = redis.call('HGET', trial, 'state')
if not st then return 'missing' end
if st == 'queued' or st == 'running' then return st end
new_attempt(tonumber(redis.call('HGET', trial, 'attempt')) + 1, ARGV[1])
redis.call('HSET', trial, 'reason', ARGV[3])
move(st, 'queued', ARGV[2])
return 'queued'
