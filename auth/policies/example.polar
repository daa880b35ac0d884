# An example access policy with three identities (client certificate CNs):
#   root    may do everything;
#   reader  may only consume;
#   nobody  may do nothing: no rule names it, as for any other subject and
#           for Anonymous callers.
# Actions: "produce", "consume", "admin", "replicate"; the resource is the Log.

allow(client: Client, _action: String, _log: Log) if client.name = "root";

allow(client: Client, "consume", _log: Log) if client.name = "reader";
