-- Login lock-out and the expiry purges (issue 16). Keep in step with the other
-- backend's 0004_auth.sql.

-- Wrong passwords in a row; at incorrect.login.attempts.allowed the user is
-- disabled, a successful login resets it (CloudStack's user.login_attempts).
ALTER TABLE users ADD COLUMN login_attempts INTEGER NOT NULL DEFAULT 0;

-- The purges of expired sessions and of finished jobs delete by time.
CREATE INDEX sessions_expires ON sessions (expires);
CREATE INDEX async_job_completed ON async_job (completed) WHERE completed IS NOT NULL;
