-- A worker claims a queued trial attempt before starting it, so no attempt runs twice.
-- The claim carries a token (random, per claim) that the attempt's heartbeat and finish must
-- show: if Redis loses the claim (the last second of writes lost on a crash or an asynchronous
-- failover) and a second worker claims the same attempt, the first one's next heartbeat is
-- refused and it stops its program. After the server changed identity (a restart or failover:
-- its run_id differs from the one recorded in KEYS[8]), claims wait `settle` seconds so that
-- runners whose claims were lost can re-assert them with their next heartbeat first.
-- KEYS: prelude's seven, KEYS[8] the sweep's epoch hash (the server run_id claims were made on).
-- ARGV: attempt, worker name, now, host, token, server run_id ('*': read it here, from INFO),
--       settle seconds, and '1' for the runner's answer (below)
-- Returns: reply('ok') | reply('paused') (leave it queued) | reply('settling') (leave it queued;
--          retry later) | reply('cancelled') | 'stale' | 'missing' | reply(current state);
--          with ARGV[8] = '1', {that answer, the run_id used, the sweep hash (on 'ok')}: what the
--          runner needs before it starts the program, in one round trip.
local attempt, worker, now, host, token, run_id, settle = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if run_id == '*' then
  run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)') or ''
end
local function answer(out, ok)
  if ARGV[8] ~= '1' then return out end
  return {out, run_id, ok and redis.call('HGETALL', sweep) or {}}
end
local st = fenced(attempt)
if st == 'stale' or st == 'missing' then return answer({st}) end
if st ~= 'queued' then return answer(reply(st)) end
local sst = redis.call('HGET', sweep, 'state')
if sst == 'paused' then return answer(reply('paused')) end
if sst == 'stopped' or sst == 'cancelled' then
  redis.call('HSET', trial, 'reason', 'sweep ' .. sst, 'ended_at', now)
  move('queued', 'cancelled', now)
  return answer(reply('cancelled'))
end
if run_id and run_id ~= '' then
  local seen, since = unpack(redis.call('HMGET', KEYS[8], 'run_id', 'since'))
  if seen ~= run_id then
    -- First claim on this server: settle only if claims were made on another one before.
    since = seen and now or '0'
    redis.call('HSET', KEYS[8], 'run_id', run_id, 'since', since)
  end
  if tonumber(now) < tonumber(since) + tonumber(settle) then return answer(reply('settling')) end
end
redis.call('HDEL', trial, 'ended_at', 'exit_code', 'stop', 'stop_reason', 'reason', 'preempting')
redis.call('HSET', trial, 'worker', worker, 'host', host, 'started_at', now, 'heartbeat', now, 'token', token)
move('queued', 'running', now)
return answer(reply('ok'), true)
