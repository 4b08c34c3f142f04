-- When the session's tenant was created, as the link that opened it said. Tenant ids can
-- be given again after a delete; a session is for the tenant created then, and a page
-- refuses it when the tenant of that id now has another creation time. Sessions opened
-- before this column (0) end at once: portal sessions last an hour, and a new link opens
-- another.
ALTER TABLE portal_sessions ADD COLUMN tenant_born INTEGER NOT NULL DEFAULT 0;
