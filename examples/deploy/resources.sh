#!/bin/sh
# Adds the example HA resources of the three-node deployment: a web server
# run by systemd (nginx) and a floating IP (OCF heartbeat/IPaddr2), both in
# the HA group "web" that prefers node1, then node2, then node3.
#
# Run ONCE, as root, on any cluster member whose daemon is running (the CLI
# reads the API token from <data_dir>/cluster.json, mode 0600). The changes
# go through Raft, so every node sees them. See README.md, step 9.
#
# Before running it, on EVERY node:
#   apt-get install -y nginx resource-agents
#   systemctl disable --now nginx     # only ha-manager may start it
#
# Adjust the variables below to your network.

set -eu

# The floating IP, its prefix length and the interface that carries it.
# The interface name must be the same on all three nodes.
VIP=192.168.10.100
VIP_PREFIX=24
VIP_NIC=eth0

# (c) Node preference: an HA group. Priorities: higher wins; distinct
# priorities make every service of the group pick the same node, which
# keeps the IP and nginx together in normal operation (there is no hard
# colocation: a service that fails to start on a node is relocated on its
# own). --restricted 0: may also run on nodes outside the list;
# --nofailback 0: move back to node1 when it returns.
# NOTE (2026-11-22): the daemon's CRM does not apply groups yet (see
# README.md, "Known limitations"); the group is stored and listed, but
# placement and recovery ignore it.
ha-manager groupadd web \
    --nodes node1:3,node2:2,node3:1 \
    --restricted 0 \
    --nofailback 0 \
    --comment "nginx and its floating IP"

# (a) A systemd service. The SID type "systemd" selects the systemd agent;
# the only parameter it accepts is `unit` (default: the SID name plus
# ".service", so it could be left out here). The agent runs
# `systemctl start|stop|is-active nginx.service`.
ha-manager add systemd:nginx \
    --param unit=nginx.service \
    --group web \
    --state started \
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
    --param agent=heartbeat/IPaddr2 \
    --param ip="$VIP" \
    --param cidr_netmask="$VIP_PREFIX" \
    --param nic="$VIP_NIC" \
    --group web \
    --state started \
    --comment "floating IP of the web server"

# Show the result.
ha-manager groupconfig
ha-manager config
ha-manager status
