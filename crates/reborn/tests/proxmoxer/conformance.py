"""Conformance check of the PVE simulator with an independent client: Python's proxmoxer.

proxmoxer was written against real Proxmox VE, not against reborn; if the simulator answers it
the way PVE would, this script exits 0. Each step prints one line so a failure is easy to place.

Usage: conformance.py HOST:PORT TOKEN_ID SECRET CA_FILE USER PASSWORD
  TOKEN_ID is "user@realm!name". CA_FILE is the simulator's self-signed certificate (PEM).
  USER/PASSWORD log in with a ticket (cookie + CSRFPreventionToken on writes).
"""

import sys
import time

from proxmoxer import ProxmoxAPI, ResourceException
from proxmoxer.tools import Tasks


def step(text):
    print(f"-- {text}", flush=True)


def check(cond, text):
    if not cond:
        print(f"FAIL: {text}", flush=True)
        sys.exit(1)


def wait_ok(prox, upid, what):
    check(isinstance(upid, str) and upid.startswith("UPID:"), f"{what} returns a UPID, got {upid!r}")
    decoded = Tasks.decode_upid(upid)
    status = Tasks.blocking_status(prox, upid, timeout=60, polling_interval=0.1)
    check(status is not None, f"{what} task finished within 60 s")
    check(status["status"] == "stopped", f"{what} task is stopped: {status}")
    check(status.get("exitstatus") == "OK", f"{what} task exit status is OK: {status}")
    return decoded


def main():
    host, token_id, secret, ca_file, login_user, password = sys.argv[1:7]
    user, token_name = token_id.split("!", 1)

    step("token auth and version")
    prox = ProxmoxAPI(host, user=user, token_name=token_name, token_value=secret, verify_ssl=ca_file)
    version = prox.version.get()
    check(version["release"].startswith("8."), f"release is 8.x: {version}")

    step("bad token is refused with 401")
    bad = ProxmoxAPI(host, user=user, token_name=token_name, token_value="wrong", verify_ssl=ca_file)
    try:
        bad.nodes.get()
        check(False, "a wrong secret must not be accepted")
    except ResourceException as e:
        check(e.status_code == 401, f"wrong secret gives 401, got {e.status_code} {e}")

    step("list nodes")
    nodes = prox.nodes.get()
    names = sorted(n["node"] for n in nodes)
    check(len(names) >= 1, f"at least one node: {nodes}")
    check(all(n["status"] == "online" for n in nodes), f"nodes online: {nodes}")

    step("list VMs (cluster resources and per node)")
    resources = prox.cluster.resources.get(type="vm")
    templates = [r for r in resources if r.get("template") == 1]
    check(templates, f"a template in cluster/resources: {resources}")
    template = templates[0]
    node, template_id = template["node"], template["vmid"]
    check(template["type"] == "qemu" and template["id"] == f"qemu/{template_id}", f"resource entry shape: {template}")
    vms = prox.nodes(node).qemu.get()
    check(any(v["vmid"] == template_id and v.get("template") == 1 for v in vms), f"template in qemu list: {vms}")

    step("next free VM id")
    newid = int(prox.cluster.nextid.get())
    check(newid >= 100, f"nextid is a VM id: {newid}")

    step("clone the template and wait for the task")
    upid = prox.nodes(node).qemu(template_id).clone.post(newid=newid, name="pxm-conformance", full=1)
    decoded = wait_ok(prox, upid, "clone")
    check(decoded["type"] == "qmclone" and decoded["id"] == str(template_id), f"clone UPID names the source: {decoded}")
    config = prox.nodes(node).qemu(newid).config.get()
    check(config["name"] == "pxm-conformance", f"clone has its name: {config}")
    check("template" not in config or config["template"] == 0, f"clone is not a template: {config}")
    check(len(config["digest"]) == 40, f"config has a SHA-1 digest: {config}")
    source = prox.nodes(node).qemu(template_id).config.get()
    check(config.get("net0") != source.get("net0"), "clone gets a new MAC")

    step("set config with form encoding (tags normalised)")
    prox.nodes(node).qemu(newid).config.put(tags="Web, prod web", onboot=1)
    config = prox.nodes(node).qemu(newid).config.get()
    check(config.get("tags") == "prod;web", f"tags normalised like PVE: {config.get('tags')}")
    check(config.get("onboot") == 1, f"boolean stored as 1: {config.get('onboot')}")

    step("start, read status")
    wait_ok(prox, prox.nodes(node).qemu(newid).status.start.post(), "start")
    status = prox.nodes(node).qemu(newid).status.current.get()
    check(status["status"] == "running", f"running after start: {status}")

    step("destroying a running VM is refused")
    try:
        prox.nodes(node).qemu(newid).delete()
        check(False, "destroy of a running VM must fail")
    except ResourceException as e:
        check(e.status_code == 500 and "running" in e.content, f"500 'is running': {e}")

    step("stop")
    wait_ok(prox, prox.nodes(node).qemu(newid).status.stop.post(), "stop")
    status = prox.nodes(node).qemu(newid).status.current.get()
    check(status["status"] == "stopped", f"stopped after stop: {status}")

    step("destroy")
    wait_ok(prox, prox.nodes(node).qemu(newid).delete(purge=1), "destroy")

    step("a missing VM is a 500 'does not exist' (PVE has no 404)")
    try:
        prox.nodes(node).qemu(newid).config.get()
        check(False, "config of a destroyed VM must fail")
    except ResourceException as e:
        check(e.status_code == 500, f"missing VM gives 500, got {e.status_code}")
        check("does not exist" in e.content, f"reason phrase says 'does not exist': {e.content!r}")

    step("parameter verification errors carry the per-parameter map")
    try:
        prox.nodes(node).qemu(template_id).clone.post(newid=5, name="bad_name")
        check(False, "invalid clone parameters must fail")
    except ResourceException as e:
        check(e.status_code == 400, f"bad parameters give 400, got {e.status_code}")
        check(e.errors and "newid" in e.errors and "name" in e.errors, f"errors map names newid and name: {e.errors}")

    step("ticket auth: login, read, and a write that needs the CSRF token")
    ticketed = ProxmoxAPI(host, user=login_user, password=password, verify_ssl=ca_file)
    ticket, csrf = ticketed.get_tokens()
    check(ticket.startswith("PVE:") and ":" in csrf, f"ticket and CSRF token shapes: {ticket!r} {csrf!r}")
    check(ticketed.nodes.get(), "nodes listed with a ticket")
    newid = int(ticketed.cluster.nextid.get())
    upid = ticketed.nodes(node).qemu(template_id).clone.post(newid=newid, name="pxm-ticket")
    wait_ok(ticketed, upid, "clone with a ticket")
    wait_ok(ticketed, ticketed.nodes(node).qemu(newid).delete(), "destroy with a ticket")

    step("wrong password is refused")
    try:
        ProxmoxAPI(host, user=login_user, password="wrong", verify_ssl=ca_file)
        check(False, "a wrong password must not log in")
    except Exception as e:  # proxmoxer raises AuthenticationError
        check("401" in str(e) or "authentication failure" in str(e), f"login failure names 401: {e}")

    print("proxmoxer conformance: OK", flush=True)


if __name__ == "__main__":
    main()
