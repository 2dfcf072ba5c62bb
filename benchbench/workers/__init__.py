"""Scaling out the client: the coordinator (the `bench run` process) plans the traffic once,
deals it to worker processes on this host or Ray actors across hosts, and stores what they
send back. Each worker runs loadgen's runner on its share with its own event loop and HTTP
client (`bench run --workers N`, `--ray ADDRESS`)."""
