"""People: team-mode users, logins, sessions, ownership and per-browser settings (``auth``)."""
