"""The network, in one place: what a node has, what the backend will pick, and whether it works.

Used by the bench's network phase (nccldoctor.probes.network, before the process group) and by
`nccldoctor preflight` (one node, before torchrun), so both judge a node the same way.

- interfaces: a node's interfaces (psutil) and NCCL's and Gloo's rules for choosing among them
- routes: which local address and interface the kernel routes towards an address
- sockets: bounded parallel TCP connects, listening sockets, the ephemeral port range
- ports: the port mesh between nodes (who listens where, who reached whom) and its judgement
- infiniband: IB/RoCE ports from /sys/class/infiniband
- inventory: one node's network as published to the store (NodeNet) and the report's section
- judge: which interface the backend will use on each node, and whether it is usable
- nic_sweep: the per-NIC sweep's plan and the judgement of its measurements

Nothing here imports torch at module level: `nccldoctor preflight` must start in milliseconds.
"""
