-- 007: scheduled syncs and change notifications (issue 16). Expand-only: the previous release
-- never names the new column (its inserts get the default, 'user') and the triggers only send
-- notifications, so rolling the code back needs no schema change.
--
-- sync_tasks.trigger: who started the task, 'user' (a click, the API) or 'schedule' (the
-- daemon's GmailSyncAutoSync).
ALTER TABLE gmailsync.sync_tasks
    ADD COLUMN trigger text NOT NULL DEFAULT 'user' CHECK (trigger IN ('user', 'schedule'));

-- One NOTIFY per task state change, sent by PostgreSQL in the transaction of the change (a
-- rolled-back start or update sends nothing):
--   channel gmailsync_events: {"event": "task", "task_id", "user_id", "state", "trigger",
--                              "processed", "error_code"}
--   channel gmailsync_queue:  the task_id of a task that became CREATED (the daemons LISTEN to
--                             claim it at once instead of at their next poll)
-- The worker adds {"event": "sync", ...} with the counts of a finished sync (gs_sql.c).
CREATE FUNCTION gmailsync.sync_tasks_notify() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gmailsync_events', json_build_object(
        'event', 'task', 'task_id', NEW.task_id, 'user_id', NEW.user_id, 'state', NEW.state,
        'trigger', NEW.trigger, 'processed', NEW.processed, 'error_code', NEW.error_code)::text);
    IF NEW.state = 'CREATED' THEN
        PERFORM pg_notify('gmailsync_queue', NEW.task_id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER sync_tasks_notify_insert AFTER INSERT ON gmailsync.sync_tasks
    FOR EACH ROW EXECUTE FUNCTION gmailsync.sync_tasks_notify();
CREATE TRIGGER sync_tasks_notify_state AFTER UPDATE OF state ON gmailsync.sync_tasks
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION gmailsync.sync_tasks_notify();
