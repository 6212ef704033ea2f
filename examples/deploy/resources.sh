#!/bin/sh
# Adds the example HA resources of the three-node deployment: a web server
# run by systemd (nginx) and a floating IP (OCF heartbeat/IPaddr2), kept on
# node1 while it runs, else on node2, else on node3, by a node-affinity
# rule.
#
# Run ONCE, as root, on any cluster member whose daemon is running (the CLI
# reads the API token from <data_dir>/cluster.json, mode 0600). The changes
# go through Raft, so every node sees them. See README.md, step 9.
#
# Before running it, on EVERY node:
#   apt-get install -y nginx resource-agents
#   systemctl disable --now nginx     # only ha-manager may start it
#
# Adjust the variables below to your network, or set them in the
# environment (VIP=10.0.0.100 sh resources.sh).
#
# Tested: tests/deploy_guide.rs runs this file unchanged on three daemons on
# loopback, with VIP=127.0.0.100, VIP_NIC=lo and VIP_AGENT=heartbeat/Dummy
# (the real OCF agent code with resource-agents' Dummy script: IPaddr2
# would change the test host's addresses) and, as no systemd runs there, a
# stand-in `systemctl` on the daemons' PATH for the systemd agent.

set -eu

# The floating IP, its prefix length and the interface that carries it.
# The interface name must be the same on all three nodes.
VIP=${VIP:-192.168.10.100}
VIP_PREFIX=${VIP_PREFIX:-24}
VIP_NIC=${VIP_NIC:-eth0}
# The OCF agent of the floating IP (provider/type under
# /usr/lib/ocf/resource.d).
VIP_AGENT=${VIP_AGENT:-heartbeat/IPaddr2}

# (a) A systemd service. The SID type "systemd" selects the systemd agent;
# the only parameter it accepts is `unit` (default: the SID name plus
# ".service", so it could be left out here). The agent runs
# `systemctl start|stop|is-active nginx.service`.
# Added stopped: the node-affinity rule (c) can only name resources that
# exist, and a service started before it would start on whichever node the
# CRM picks first, then move.
ha-manager add systemd:nginx \
    --param unit=nginx.service \
    --state stopped \
    --max_restart 1 \
    --max_relocate 1 \
    --comment "web server"

# (b) A floating IP through the OCF agent IPaddr2. The SID type "ocf"
# selects the OCF agent; `agent=heartbeat/IPaddr2` runs
# /usr/lib/ocf/resource.d/heartbeat/IPaddr2 and every other --param
# key=value reaches the script as OCF_RESKEY_key=value:
#   OCF_RESKEY_ip, OCF_RESKEY_cidr_netmask, OCF_RESKEY_nic.
# The SID name ("vip") becomes OCF_RESOURCE_INSTANCE.
ha-manager add ocf:vip \
    --param agent="$VIP_AGENT" \
    --param ip="$VIP" \
    --param cidr_netmask="$VIP_PREFIX" \
    --param nic="$VIP_NIC" \
    --state stopped \
    --comment "floating IP of the web server"

# (c) Node preference: a node-affinity rule (Proxmox VE 9's replacement of
# HA groups). Priorities: higher wins; both services prefer the same node,
# which keeps the IP and nginx together in normal operation (there is no
# hard colocation: a service that fails to start on a node is relocated on
# its own). Not strict (--strict 0, the default): they may also run on nodes
# outside the list. Failback (the resources' `failback 1`, the default):
# they move back to node1 when it returns.
ha-manager rules add node-affinity web \
    --resources systemd:nginx,ocf:vip \
    --nodes node1:3,node2:2,node3:1 \
    --comment "nginx and its floating IP"

# (d) Start both.
ha-manager set systemd:nginx --state started
ha-manager set ocf:vip --state started
