-- Shared by every trial transition. Every transition script takes the same seven KEYS:
--   KEYS[1] sweep hash, KEYS[2] trial hash, KEYS[3] queued set, KEYS[4] running zset,
--   KEYS[5] events stream, KEYS[6] the trial's metric history list, KEYS[7] the trial's wake
--   list prefix (an attempt's runner blocks on KEYS[7] .. ':' .. attempt).
-- move() keeps the per-state counters (n:<state> in the sweep hash) and the two indexes in step
-- with the trial's state, so counts and liveness scans never need a full scan; it returns the
-- id of the event it added.
-- reply() answers with a status and the trial record as left, so callers never read it back.
local sweep, trial, queued, running, events, history, wake = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

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
  return redis.call('XADD', events, 'MAXLEN', '~', 10000, '*', 'trial', n, 'state', to,
                    'attempt', redis.call('HGET', trial, 'attempt'))
end

local function reply(status)
  local out = redis.call('HGETALL', trial)
  table.insert(out, 1, status)
  return out
end

local function fenced(attempt)
  -- The attempt number fences off orphans: a superseded attempt changes nothing.
  local st = redis.call('HGET', trial, 'state')
  if not st then return 'missing' end
  if tonumber(redis.call('HGET', trial, 'attempt')) ~= tonumber(attempt) then return 'stale' end
  return st
end

local function job_id(number, attempt)
  -- The same id as sweepq.model.job_id: derived here, where the attempt is incremented.
  return 'sweepq-' .. redis.call('HGET', sweep, 'id') .. '-' .. number .. '-' .. attempt
end

local function new_attempt(attempt)
  -- A new attempt starts from scratch: the metric history is by position (W&B's "iteration"),
  -- so the dead attempt's values must not count toward the new one's bands.
  redis.call('DEL', history)
  redis.call('HDEL', trial, 'history_len', 'logged', 'dropped', 'best', 'last', 'summary', 'sdk',
             'heartbeat', 'stop', 'stop_reason', 'preempting', 'exit_code', 'ended_at', 'token')
  redis.call('HSET', trial, 'attempt', attempt, 'job_id', job_id(redis.call('HGET', trial, 'number'), attempt))
end

local function stopped_as(stop)
  -- A pending stop request decides how an attempt ends, whatever happened after it.
  if stop == 'prune' then return 'pruned' end
  if stop == 'kill' or stop == 'cancel' then return 'killed' end
  return nil
end

local function closed_sweep()
  -- The sweep's state if no trial may start in it any more (stopped, cancelled, finished), else nil:
  -- a trial that would be queued again there ends cancelled instead, so a cancel always ends.
  local sst = redis.call('HGET', sweep, 'state')
  if sst == 'stopped' or sst == 'cancelled' or sst == 'finished' then return sst end
  return nil
end
