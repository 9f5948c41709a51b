-- Run an ended trial again with the same parameters, as a new attempt.
-- KEYS: prelude's five.
-- ARGV: job id, now, reason
-- Returns: 'queued' | 'missing' | current state (queued or running: nothing to do)
local st = redis.call('HGET', trial, 'state')
if not st then return 'missing' end
if st == 'queued' or st == 'running' then return st end
redis.call('HSET', trial, 'attempt', tonumber(redis.call('HGET', trial, 'attempt')) + 1,
           'job_id', ARGV[1], 'reason', ARGV[3])
redis.call('HDEL', trial, 'stop', 'stop_reason', 'exit_code', 'ended_at', 'heartbeat')
move(st, 'queued', ARGV[2])
return 'queued'
