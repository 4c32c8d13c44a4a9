-- A manager that is stopping (SIGTERM) records when it began to leave: it
-- still beats and finishes its running jobs up to a deadline, but the others
-- take its share of the background work (router checks, loops) at once
-- instead of after cluster.heartbeat.threshold. Cleared when it joins again.
-- Keep in step with the other backend's 0022_cluster_leaving.sql.
ALTER TABLE mshost ADD COLUMN leaving BIGINT;
