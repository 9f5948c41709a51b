-- The reaper: a running attempt whose heartbeat is older than the cutoff lost its worker.
-- It is queued again as a new attempt while attempts remain, else it ends 'crashed'.
-- KEYS: prelude's five, KEYS[6] the trial's history list.
-- ARGV: attempt, cutoff, max attempts, job id for the new attempt, now
-- Returns: 'queued' | 'crashed' | 'alive' | 'stale' | 'missing' | current state
local attempt, cutoff, max_attempts, job_id, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local st = fenced(attempt)
if st ~= 'running' then return st end
if tonumber(redis.call('HGET', trial, 'heartbeat') or '0') > tonumber(cutoff) then return 'alive' end
local worker = redis.call('HGET', trial, 'worker') or '?'
if tonumber(attempt) < tonumber(max_attempts) then
  new_attempt(tonumber(attempt) + 1, job_id)
  redis.call('HSET', trial, 'reason', 'attempt ' .. attempt .. ' lost its worker ' .. worker)
  move('running', 'queued', now)
  return 'queued'
end
redis.call('HSET', trial, 'ended_at', now,
           'reason', 'worker ' .. worker .. ' lost; ' .. attempt .. ' attempts used')
move('running', 'crashed', now)
return 'crashed'
