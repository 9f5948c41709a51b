-- A worker claims a queued trial attempt before starting it, so no attempt runs twice.
-- KEYS: prelude's seven.
-- ARGV: attempt, worker name, now, host
-- Returns: reply('ok') | reply('paused') (leave it queued) | reply('cancelled') | 'stale' |
--          'missing' | reply(current state)
local attempt, worker, now, host = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local st = fenced(attempt)
if st == 'stale' or st == 'missing' then return {st} end
if st ~= 'queued' then return reply(st) end
local sst = redis.call('HGET', sweep, 'state')
if sst == 'paused' then return reply('paused') end
if sst == 'stopped' or sst == 'cancelled' then
  redis.call('HSET', trial, 'reason', 'sweep ' .. sst, 'ended_at', now)
  move('queued', 'cancelled', now)
  return reply('cancelled')
end
redis.call('HDEL', trial, 'ended_at', 'exit_code', 'stop', 'stop_reason', 'reason', 'preempting')
redis.call('HSET', trial, 'worker', worker, 'host', host, 'started_at', now, 'heartbeat', now)
move('queued', 'running', now)
return reply('ok')
