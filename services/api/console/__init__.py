"""The moderators' review console and the analysts' dashboard: server-rendered pages on
the results API, signed in with an API token exchanged for a session cookie."""
