-- The reaper: a running attempt whose heartbeat is older than the cutoff lost its worker.
-- A pending stop request wins (a prune or kill whose worker died mid-grace still ends pruned or
-- killed); in a closed sweep it ends 'cancelled'; else it is queued again as a new attempt while
-- attempts remain, else 'crashed'.
-- KEYS: prelude's seven.
-- ARGV: attempt, cutoff, max attempts, now
-- Returns: reply('queued') | reply('crashed') | reply('pruned'|'killed'|'cancelled') | 'alive' | 'stale' |
--          'missing' | reply(current state)
local attempt, cutoff, max_attempts, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local st = fenced(attempt)
if st == 'stale' or st == 'missing' then return {st} end
if st ~= 'running' then return reply(st) end
if tonumber(redis.call('HGET', trial, 'heartbeat') or '0') > tonumber(cutoff) then return {'alive'} end
local worker = redis.call('HGET', trial, 'worker') or '?'
local stop = stopped_as(redis.call('HGET', trial, 'stop'))
if stop then
  redis.call('HSET', trial, 'ended_at', now,
             'reason', (redis.call('HGET', trial, 'stop_reason') or stop) .. ' (worker ' .. worker .. ' lost)')
  move('running', stop, now)
  return reply(stop)
end
local closed = closed_sweep()
if closed then
  redis.call('HSET', trial, 'ended_at', now, 'reason', 'sweep ' .. closed .. '; attempt ' .. attempt .. ' lost its worker ' .. worker)
  move('running', 'cancelled', now)
  return reply('cancelled')
end
if tonumber(attempt) < tonumber(max_attempts) then
  new_attempt(tonumber(attempt) + 1)
  redis.call('HSET', trial, 'reason', 'attempt ' .. attempt .. ' lost its worker ' .. worker)
  move('running', 'queued', now)
  return reply('queued')
end
redis.call('HSET', trial, 'ended_at', now,
           'reason', 'worker ' .. worker .. ' lost; ' .. attempt .. ' attempts used')
move('running', 'crashed', now)
return reply('crashed')
