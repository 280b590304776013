-- One machine step as PostgreSQL sees it, for pgbench (docs/scaling.md):
-- lock the row and read its history, append an event and move the timer, commit.
-- Setup: the `machines` and `machine_events` tables of workers/tables.py, with
-- 100000 rows in machines ('payments', 'inv-<n>.1'). Run, e.g.:
--   pgbench -n -c 8 -j 2 -T 30 -f benchmarks/pg_step.sql <database>
\set m random(1, 100000)
BEGIN;
SELECT m.*, (SELECT json_agg(json_build_array(e.event_id, e.occurred_at, e.body)
                             ORDER BY e.event_id)
             FROM machine_events e WHERE e.namespace = m.namespace AND e.machine_id = m.id)
  FROM machines m WHERE m.namespace = 'payments' AND m.id = 'inv-' || :m || '.1'
  FOR UPDATE OF m SKIP LOCKED;
WITH appended AS (
  INSERT INTO machine_events (namespace, machine_id, event_id, occurred_at, body)
  SELECT 'payments', 'inv-' || :m || '.1',
         coalesce((SELECT max(event_id) FROM machine_events
                   WHERE namespace = 'payments' AND machine_id = 'inv-' || :m || '.1'), 0) + 1,
         now(),
         '{"type": "status_changed", "status": {"status": "captured", "cost": {"amount": 1000,
           "currency": "RUB"}}, "plan_id": "inv.1.1", "batch": [{"from": 1, "to": 2,
           "amount": 1000, "currency": "RUB", "details": "posting 0"}]}'::jsonb)
UPDATE machines SET last_event_id = last_event_id + 1,
       timer_due_at = now() + interval '1 second', timer_token = md5(random()::text),
       timer_sent_at = now(), updated_at = now()
 WHERE namespace = 'payments' AND id = 'inv-' || :m || '.1';
COMMIT;
