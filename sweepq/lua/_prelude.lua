-- Shared by every trial transition. Every transition script takes the same first five KEYS:
--   KEYS[1] sweep hash, KEYS[2] trial hash, KEYS[3] queued set, KEYS[4] running zset,
--   KEYS[5] events stream; scripts that start a new attempt also take KEYS[6], the trial's
--   metric history list.
-- move() keeps the per-state counters (n:<state> in the sweep hash) and the two indexes in step
-- with the trial's state, so counts and liveness scans never need a full scan.
local sweep, trial, queued, running, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

local function move(from, to, now)
  local n = redis.call('HGET', trial, 'number')
  redis.call('HSET', trial, 'state', to)
  if from then redis.call('HINCRBY', sweep, 'n:' .. from, -1) end
  redis.call('HINCRBY', sweep, 'n:' .. to, 1)
  if to == 'queued' then redis.call('SADD', queued, n) else redis.call('SREM', queued, n) end
  if to == 'running' then
    redis.call('ZADD', running, now, n)
  else
    redis.call('ZREM', running, n)
  end
  redis.call('XADD', events, 'MAXLEN', '~', 10000, '*', 'trial', n, 'state', to,
             'attempt', redis.call('HGET', trial, 'attempt'))
end

local function fenced(attempt)
  -- The attempt number fences off orphans: a superseded attempt changes nothing.
  local st = redis.call('HGET', trial, 'state')
  if not st then return 'missing' end
  if tonumber(redis.call('HGET', trial, 'attempt')) ~= tonumber(attempt) then return 'stale' end
  return st
end

local function new_attempt(attempt, job_id)
  -- A new attempt starts from scratch: the metric history is by position (W&B's "iteration"),
  -- so the dead attempt's values must not count toward the new one's bands.
  redis.call('DEL', KEYS[6])
  redis.call('HDEL', trial, 'history_len', 'logged', 'dropped', 'best', 'last', 'summary', 'sdk',
             'heartbeat', 'stop', 'stop_reason', 'preempting', 'exit_code', 'ended_at')
  redis.call('HSET', trial, 'attempt', attempt, 'job_id', job_id)
end
