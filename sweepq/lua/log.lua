-- Append log() calls of a running attempt, in order: each whole record to the sweep's metric
-- stream and the metric's value to the trial's history, both capped per trial so a flood cannot
-- exhaust Redis; last/best are kept on the trial hash. A batch is the rows that reached the
-- runner together (one round trip, one script call, however fast the program logs). The reply
-- carries any stop request, so the SDK learns of a prune on a log() with no extra round trip.
-- KEYS: trial hash, history list, metrics stream
-- ARGV: attempt, goal, per-trial cap, stream cap, trial number, source ('sdk' or 'stdout':
--       printed `name=value` lines count only while the program does not use the SDK), then
--       per record: step, record json, metric value ('' when absent or not finite)
-- Returns: {state, stop request or ''}; state 'stale' for a superseded attempt
local trial, hist, metrics = KEYS[1], KEYS[2], KEYS[3]
local attempt, goal = ARGV[1], ARGV[2]
local cap, stream_cap, number, source = tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local st, current, best, stop, sdk, logged = unpack(redis.call('HMGET', trial, 'state', 'attempt', 'best', 'stop',
                                                               'sdk', 'logged'))
if not st then return {'missing', ''} end
if tonumber(current) ~= tonumber(attempt) then return {'stale', ''} end
if st ~= 'running' then return {st, ''} end
if source == 'stdout' and sdk then return {st, stop or ''} end
if source == 'sdk' and not sdk then redis.call('HSET', trial, 'sdk', 1) end  -- the SDK's first log marks the trial
logged = tonumber(logged or '0')
local best_v, best_s = tonumber(best or ''), nil
local last, values, dropped = nil, 0, 0
for i = 7, #ARGV, 3 do
  local step, record, value = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  logged = logged + 1
  if logged <= cap then
    local index = ''
    if value ~= '' then index = redis.call('RPUSH', hist, value) end
    redis.call('XADD', metrics, 'MAXLEN', '~', stream_cap, '*', 't', number, 'a', attempt,
               's', step, 'v', value, 'i', index, 'd', record)
  else
    dropped = dropped + 1
  end
  if value ~= '' then
    local v = tonumber(value)
    values, last = values + 1, value
    if best_v == nil or (goal == 'maximize' and v > best_v) or (goal ~= 'maximize' and v < best_v) then
      best_v, best_s = v, value
    end
  end
end
redis.call('HSET', trial, 'logged', logged)
if dropped > 0 then redis.call('HINCRBY', trial, 'dropped', dropped) end
if values > 0 then
  redis.call('HINCRBY', trial, 'history_len', values)
  redis.call('HSET', trial, 'last', last)
  if best_s then redis.call('HSET', trial, 'best', best_s) end
end
return {st, stop or ''}
