-- Append one log() call of a running attempt: the whole record to the sweep's metric stream and
-- the metric's value to the trial's history, both capped per trial so a flood cannot exhaust
-- Redis; last/best are kept on the trial hash. The reply carries any stop request, so the SDK
-- learns of a prune on its next log() with no extra round trip.
-- KEYS: trial hash, history list, metrics stream
-- ARGV: attempt, step, record json, metric value ('' when absent or not finite), goal,
--       per-trial cap, stream cap, trial number, source ('sdk' or 'stdout': printed
--       `name=value` lines count only while the program does not use the SDK)
-- Returns: {state, stop request or ''}; state 'stale' for a superseded attempt
local trial, hist, metrics = KEYS[1], KEYS[2], KEYS[3]
local attempt, step, record, value, goal = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local cap, stream_cap, number, source = tonumber(ARGV[6]), ARGV[7], ARGV[8], ARGV[9]
local st, current, best, stop, sdk = unpack(redis.call('HMGET', trial, 'state', 'attempt', 'best', 'stop', 'sdk'))
if not st then return {'missing', ''} end
if tonumber(current) ~= tonumber(attempt) then return {'stale', ''} end
if st ~= 'running' then return {st, ''} end
if source == 'stdout' and sdk then return {st, stop or ''} end
if source == 'sdk' and not sdk then redis.call('HSET', trial, 'sdk', 1) end  -- the SDK's first log marks the trial
local logged = redis.call('HINCRBY', trial, 'logged', 1)
local index = ''
if logged <= cap then
  if value ~= '' then index = redis.call('RPUSH', hist, value) end
  redis.call('XADD', metrics, 'MAXLEN', '~', stream_cap, '*', 't', number, 'a', attempt,
             's', step, 'v', value, 'i', index, 'd', record)
else
  redis.call('HINCRBY', trial, 'dropped', 1)
end
if value ~= '' then
  local v = tonumber(value)
  best = tonumber(best or '')
  redis.call('HINCRBY', trial, 'history_len', 1)
  if best == nil or (goal == 'maximize' and v > best) or (goal ~= 'maximize' and v < best) then
    redis.call('HSET', trial, 'last', value, 'best', value)
  else
    redis.call('HSET', trial, 'last', value)
  end
end
return {st, stop or ''}
