# proglog's default access policy, for clusters with TLS and client
# certificates. Whatever no rule below allows is denied.
#
# proglog asks allow(actor, action, resource):
#   actor     a Client (a verified client certificate; client.name is its CN,
#             or its SAN URI or DNS name when the node is configured so) or
#             an Anonymous (no TLS, or no client certificate);
#   action    "produce", "consume", "admin" or "replicate";
#   resource  the Log (the only resource).

# The operator's identity may do everything.
allow(client: Client, _action: String, _log: Log) if client.name = "root";

# Nodes replicate from each other and may do nothing else. A node is any
# certificate whose subject starts with "node-" (issue node certificates with
# CN node-<id>), so the CA must never issue a client certificate with that
# prefix. To pin the exact set instead, replace the condition with e.g.
#   client.name in ["node-0", "node-1", "node-2"]
allow(client: Client, "replicate", _log: Log) if client.name.starts_with("node-");

# Anonymous callers: no rule, so nothing.
