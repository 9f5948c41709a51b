-- Record how a running attempt ended. A pending stop request decides the state (pruned or
-- killed) whatever the program did after it; 'requeue' (preemption, warm shutdown) puts the
-- trial back in the queue as a new attempt, not counted as a failure.
-- KEYS: prelude's five, KEYS[6] the trial's history list.
-- ARGV: attempt, outcome (finished|failed|crashed|requeue), exit code or '', reason, now,
--       job id for a requeued attempt
-- Returns: the final state | 'queued' | 'stale' | 'missing' | current state when not running
local attempt, outcome, code, reason, now, job_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local st = fenced(attempt)
if st ~= 'running' then return st end
local stop = redis.call('HGET', trial, 'stop')
if stop == 'prune' then
  outcome, reason = 'pruned', redis.call('HGET', trial, 'stop_reason') or reason
elseif stop == 'kill' or stop == 'cancel' then
  outcome, reason = 'killed', redis.call('HGET', trial, 'stop_reason') or reason
end
if outcome == 'requeue' then
  redis.call('HINCRBY', trial, 'preemptions', 1)
  new_attempt(tonumber(attempt) + 1, job_id)
  redis.call('HSET', trial, 'reason', reason)
  move('running', 'queued', now)
  return 'queued'
end
if code ~= '' then redis.call('HSET', trial, 'exit_code', code) end
redis.call('HSET', trial, 'ended_at', now, 'reason', reason)
move('running', outcome, now)
return outcome
