# proglog's policy for local development without TLS, where every caller is
# Anonymous: everyone may do everything. Never use it with TLS or on a network
# others can reach.

allow(_anonymous: Anonymous, _action: String, _log: Log);
allow(_client: Client, _action: String, _log: Log);
