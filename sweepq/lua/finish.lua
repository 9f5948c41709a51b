-- Record how a running attempt ended. A pending stop request decides the state (pruned or
-- killed) whatever the program did after it; 'requeue' (preemption, warm shutdown) puts the
-- trial back in the queue as a new attempt, not counted as a failure (in a closed sweep it ends
-- 'cancelled' instead).
-- The runner's own checks of the record are made here, in the same round trip (ARGV[7]):
-- 'preempt' requeues an attempt asked to yield (`preempting`), and 'metric' also answers
-- 'unlogged' (changing nothing) for a run that finished without logging the sweep's metric
-- and was not stopped, for the runner to decide between "never logged" and "lost by Redis".
-- The attempt's wake list gets 'done', which ends the runner's heartbeat wait.
-- KEYS: prelude's seven.
-- ARGV: attempt, outcome (finished|failed|crashed|requeue), exit code or '', reason, now, token
--       ('' = no token check; else a runner whose claim was replaced gets 'stale'),
--       checks ('' | 'preempt' | 'metric'), the run summary ('' = none sent)
-- Returns: reply(final state) | reply('queued') | 'stale' | 'missing' | 'unlogged' | reply(current state)
local attempt, outcome, code, reason, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local checks = ARGV[7] or ''
local done = wake .. ':' .. attempt
redis.call('RPUSH', done, 'done')
redis.call('EXPIRE', done, 60)
local st = fenced(attempt)
if st == 'stale' or st == 'missing' then return {st} end
if st ~= 'running' then return reply(st) end
local token, held = ARGV[6] or '', redis.call('HGET', trial, 'token')
if token ~= '' and held and held ~= token then return {'stale'} end
local function set(field)
  local v = redis.call('HGET', trial, field)
  return v and v ~= ''
end
if checks ~= '' then
  if set('preempting') then
    outcome, reason = 'requeue', 'preempted'
  elseif checks == 'metric' and outcome == 'finished' and not set('stop')
      and tonumber(redis.call('HGET', trial, 'history_len') or '0') == 0 then
    return {'unlogged'}
  end
end
if (ARGV[8] or '') ~= '' then redis.call('HSET', trial, 'summary', ARGV[8]) end
local stop = stopped_as(redis.call('HGET', trial, 'stop'))
if stop then
  outcome, reason = stop, redis.call('HGET', trial, 'stop_reason') or reason
end
if outcome == 'requeue' and closed_sweep() then
  -- Never queue into a sweep where nothing may start: the planner would wait for it forever.
  outcome, reason = 'cancelled', reason .. '; not requeued: sweep ' .. closed_sweep()
end
if outcome == 'requeue' then
  redis.call('HINCRBY', trial, 'preemptions', 1)
  new_attempt(tonumber(attempt) + 1)
  redis.call('HSET', trial, 'reason', reason)
  move('running', 'queued', now)
  return reply('queued')
end
if code ~= '' then redis.call('HSET', trial, 'exit_code', code) end
redis.call('HSET', trial, 'ended_at', now, 'reason', reason)
move('running', outcome, now)
return reply(outcome)
