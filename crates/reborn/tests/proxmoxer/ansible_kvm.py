"""The calls Ansible's community.proxmox modules make, replayed through proxmoxer.

Installing Ansible is too heavy for a test, but its Proxmox modules are thin layers over
proxmoxer. This script issues the same API calls in the same order as
  - module_utils/proxmox.py  (ProxmoxAnsible: version, get_node, get_nextvmid, get_vmid by
    name, get_vm by vmid, api_task_ok/wait_for_task polling, get_pool),
  - modules/proxmox_kvm.py   (state present: clone / create / update, started, current,
    restarted (reboot, and reset with force), paused (suspend), stopped (shutdown), template,
    absent; delete/revert of settings),
  - modules/proxmox_vm_info.py (cluster/resources + nodes/{node}/qemu + config current=0/1 +
    agent network-get-interfaces),
  - modules/proxmox_node_info.py, modules/proxmox_tasks_info.py,
and checks that the simulator answers like Proxmox VE 8 would (shapes, status codes, reason
phrases, task exit statuses, pending changes, eventual consistency of cluster/resources).

Usage: ansible_kvm.py HOST:PORT TOKEN_ID SECRET CA_FILE RESOURCES_LAG_MS AGENT_DELAY_MS POOL
  POOL is a resource pool configured in the simulator.
"""

import re
import sys
import time
from urllib.parse import quote

from proxmoxer import ProxmoxAPI, ResourceException


def step(text):
    print(f"-- {text}", flush=True)


def check(cond, text):
    if not cond:
        print(f"FAIL: {text}", flush=True)
        sys.exit(1)


def expect_error(call, status, reason_part, what):
    """Run `call`, which must fail with `status` and a reason phrase containing `reason_part`."""
    try:
        call()
    except ResourceException as e:
        check(e.status_code == status, f"{what}: status {status}, got {e.status_code} {e.content!r}")
        check(reason_part in e.content, f"{what}: reason contains {reason_part!r}: {e.content!r}")
        return e
    check(False, f"{what}: must fail with {status}")


class Module:
    """What ProxmoxAnsible does with the API, call for call (module_utils/proxmox.py)."""

    def __init__(self, prox):
        self.api = prox
        # ProxmoxAnsible.__init__ tests the credentials with GET /version.
        self.api.version.get()

    def version(self):
        v = self.api.version.get()["version"]
        return tuple(int(x) for x in re.findall(r"\d+", v))

    def get_node(self, node):
        nodes = [n for n in self.api.nodes.get() if n["node"] == node]
        return nodes[0] if nodes else None

    def get_nextvmid(self):
        return self.api.cluster.nextid.get()

    def get_vmid(self, name):
        vms = [vm["vmid"] for vm in self.api.cluster.resources.get(type="vm") if vm.get("name") == name]
        return vms[0] if vms else None

    def get_vm(self, vmid):
        vms = [vm for vm in self.api.cluster.resources.get(type="vm") if vm["vmid"] == int(vmid)]
        return vms[0] if vms else None

    def api_task_ok(self, node, upid):
        status = self.api.nodes(node).tasks(upid).status.get()
        exitstatus = status.get("exitstatus") or ""
        return status["status"] == "stopped" and (exitstatus == "OK" or exitstatus.startswith("WARN"))

    def wait_for_task(self, node, upid, timeout=30):
        # proxmox_kvm polls once a second; a shorter interval keeps the test quick.
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.api_task_ok(node, upid):
                return True
            time.sleep(0.1)
        # On timeout the module reports the first log line.
        first = self.api.nodes(node).tasks(upid).log.get()[:1]
        check(False, f"task {upid} did not finish OK: {self.api.nodes(node).tasks(upid).status.get()} {first}")

    def task_status(self, node, upid):
        """api_task_complete: wait until stopped, return (ok, exitstatus)."""
        deadline = time.time() + 30
        while time.time() < deadline:
            status = self.api.nodes(node).tasks(upid).status.get()
            if status["status"] == "stopped":
                return status["exitstatus"] == "OK", status["exitstatus"]
            time.sleep(0.1)
        check(False, f"task {upid} still running")

    def current_status(self, vm):
        return self.api.nodes(vm["node"]).qemu(vm["vmid"]).status.current.get()["status"]


def wait_resources(mod, vmid, field, value, lag_s):
    """cluster/resources is fed by pvestatd every 10 s: poll until the entry shows `value`."""
    deadline = time.time() + lag_s * 3 + 5
    while time.time() < deadline:
        vm = mod.get_vm(vmid)
        if vm and vm.get(field) == value:
            return vm
        time.sleep(0.05)
    check(False, f"cluster/resources never showed {field}={value!r} for {vmid}: {mod.get_vm(vmid)}")


def main():
    host, token_id, secret, ca_file, lag_ms, agent_ms, pool = sys.argv[1:8]
    lag_s = int(lag_ms) / 1000.0
    user, token_name = token_id.split("!", 1)

    step("connect like ProxmoxAnsible (token, timeout 5 s) and read the version")
    prox = ProxmoxAPI(host, user=user, token_name=token_name, token_value=secret, verify_ssl=ca_file, timeout=5)
    mod = Module(prox)
    version = mod.version()
    check(version[0] == 8, f"major version 8 (proxmox_kvm enables ciupgrade etc. from 8): {version}")

    step("proxmox_node_info: GET /nodes")
    nodes = prox.nodes.get()
    for n in nodes:
        for key in ("node", "status", "id", "type", "maxcpu", "maxmem", "mem", "uptime", "ssl_fingerprint", "level"):
            check(key in n, f"node entry has {key}: {n}")
    node = nodes[0]["node"]
    check(mod.get_node(node) is not None, "get_node finds the node")
    check(mod.get_node("no-such-node") is None, "get_node of an unknown node is None")

    step("get_pool: unknown pool is a 500 'does not exist', the configured one is empty")
    expect_error(lambda: prox.pools("no-such-pool").get(), 500, "pool 'no-such-pool' does not exist", "GET /pools/<unknown>")
    check(prox.pools(pool).get()["members"] == [], f"pool {pool} starts empty")

    step("proxmox_kvm clone: source by name, newid from nextid, existence checks")
    resources = prox.cluster.resources.get(type="vm")
    template = next(r for r in resources if r.get("template") == 1 and r["node"] == node)
    source_name = template["name"]
    vmid = mod.get_vmid(source_name)
    check(vmid == template["vmid"], f"get_vmid by name finds the template: {vmid}")
    newid = mod.get_nextvmid()
    check(isinstance(newid, str) and newid.isdigit(), f"nextid is a JSON string like PVE's: {newid!r}")
    check(mod.get_vm(vmid) is not None, "get_vm of the source")
    check(mod.get_vm(newid) is None, "get_vm(newid) is absent before the clone")
    check(prox.cluster.nextid.get(vmid=newid) == newid, "nextid?vmid=<free> echoes it")
    e = expect_error(lambda: prox.cluster.nextid.get(vmid=vmid), 400, "Parameter verification failed", "nextid?vmid=<taken>")
    check(e.errors and e.errors.get("vmid", "").startswith(f"VM {vmid} already exists"), f"errors.vmid: {e.errors}")
    check(mod.version()[0] >= 4, "create_vm reads the version again")
    expect_error(
        lambda: prox.nodes(node).qemu(vmid).clone.post(newid=newid, name="ans-clone", full=1, pool="no-such-pool"),
        403, "pool 'no-such-pool' does not exist", "clone into an unknown pool",
    )
    upid = prox.nodes(node).qemu(vmid).clone.post(newid=newid, name="ans-clone", full=1, pool=pool)
    check(upid.startswith(f"UPID:{node}:") and f":qmclone:{vmid}:" in upid, f"clone UPID names the source: {upid}")
    mod.wait_for_task(node, upid)

    step("cluster/resources catches up with the clone (pvestatd lag)")
    fresh = mod.get_vm(newid)
    check(fresh is not None, "the clone is listed at once (from the cluster vmlist)")
    if fresh["status"] == "unknown":
        # No pvestatd sample yet: listed from the vmlist, without the RRD fields.
        check("name" not in fresh and "template" not in fresh, f"no RRD fields yet: {fresh}")
    else:
        # A sample taken during the clone sees the placeholder config (no name yet).
        check(fresh.get("name") in ("ans-clone", f"VM {newid}"), f"sampled clone entry: {fresh}")
    vm = wait_resources(mod, newid, "name", "ans-clone", lag_s)
    check(vm["status"] == "stopped" and vm["template"] == 0, f"settled entry: {vm}")
    check(mod.get_vmid("ans-clone") == int(newid), "get_vmid finds the clone by name")
    check(vm.get("pool") == pool, f"the clone's resource entry names its pool: {vm}")
    members = prox.pools(pool).get()["members"]
    check([m["vmid"] for m in members] == [int(newid)], f"get_pool lists the clone: {members}")

    step("proxmox_kvm clone again with the same newid: get_vm(newid) says it exists")
    check(mod.get_vm(newid) is not None, "idempotent clone check")

    step("proxmox_kvm create (no clone): nextid, qemu.create, get_vminfo")
    create_name = "ans-create"
    check(mod.get_vmid(create_name) is None, "name not used yet")
    createid = mod.get_nextvmid()
    check(mod.get_vm(createid) is None, "get_vm(vmid) before create")
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILJkVm98B71lD5XHfihwcYHE9TVpsJmK1vR1JcaU82L+ ans@test"
    upid = prox.nodes(node).qemu.create(
        vmid=createid, name=create_name, memory=1024, cpu=None, cores=2, sockets=None,
        agent=1, ostype="l26", scsihw="virtio-scsi-single", onboot=0,
        scsi0="local-lvm:4", ide2="local-lvm:cloudinit", net0="virtio,bridge=vmbr0,tag=77",
        ipconfig0="ip=192.0.2.10/24,gw=192.0.2.1", ciuser="ans", sshkeys=quote(key, safe=""),
        nameserver="1.1.1.1 8.8.8.8", searchdomain="example.internal", tags="web,Prod",
    )
    check(f":qmcreate:{createid}:" in upid, f"create UPID: {upid}")
    mod.wait_for_task(node, upid)
    config = prox.nodes(node).qemu(createid).config.get()
    mac = re.search("=(.*?),", config["net0"]).group(1)
    check(re.fullmatch(r"[0-9A-F]{2}(:[0-9A-F]{2}){5}", mac), f"get_vminfo parses the MAC out of net0: {config['net0']}")
    dev = re.search("(.*?)(,|$)", config["scsi0"]).group(1)
    check(dev.startswith("local-lvm:vm-"), f"get_vminfo parses the scsi0 volume: {config['scsi0']}")
    check(config["tags"] == "prod;web", f"tags normalised: {config['tags']}")
    check(config["sshkeys"] == quote(key, safe=""), "sshkeys stored URL-encoded as sent")
    check(config["memory"] == "1024" and config["cores"] == 2, f"memory string, cores number: {config}")

    step("proxmox_kvm state=started (status/current, then status/start)")
    vm = wait_resources(mod, newid, "status", "stopped", lag_s)
    check(mod.current_status(vm) == "stopped", "stopped before start")
    upid = prox.nodes(vm["node"]).qemu(newid).status.start.post()
    check(f":qmstart:{newid}:" in upid, f"start UPID: {upid}")
    mod.wait_for_task(vm["node"], upid)
    if int(agent_ms) > 0:
        expect_error(
            lambda: prox.nodes(node).qemu(newid).agent("network-get-interfaces").get(),
            500, "QEMU guest agent is not running", "agent right after start",
        )
    status = prox.nodes(node).qemu(newid).status.current.get()
    check(status["status"] == "running" and status["qmpstatus"] == "running", f"running: {status}")
    for k in ("vmid", "name", "cpus", "maxmem", "maxdisk", "uptime", "pid", "ha", "agent"):
        check(k in status, f"status/current has {k}: {status}")
    upid = prox.nodes(node).qemu(newid).status.start.post()
    ok, exitstatus = mod.task_status(node, upid)
    check(not ok and exitstatus == f"VM {newid} already running", f"second start fails in the task: {exitstatus}")

    step("proxmox_vm_info: resources + qemu list + config current/pending + agent network")
    agent_delay_s = int(agent_ms) / 1000.0
    deadline = time.time() + agent_delay_s + 10
    while True:
        try:
            net = prox.nodes(node).qemu(newid).agent("network-get-interfaces").get()["result"]
            break
        except ResourceException as e:
            check(e.status_code == 500 and time.time() < deadline, f"agent comes up: {e}")
            time.sleep(0.1)
    check(any(i["name"] == "eth0" for i in net), f"eth0 reported by the agent: {net}")
    cluster = {int(m["vmid"]): m for m in prox.cluster.resources.get(type="vm")}
    listed = {int(v["vmid"]): v for v in prox.nodes(node).qemu.get()}
    check(int(newid) in cluster and int(newid) in listed, "VM in both lists")
    check(listed[int(newid)]["status"] == "running", f"qemu list status: {listed[int(newid)]}")
    check(all(m["type"] in ("qemu", "lxc") for m in cluster.values()), "guest types are qemu/lxc")

    step("proxmox_kvm update on the running VM: cold keys stay pending")
    result = prox.nodes(node).qemu(newid).config.set(name="ans-clone", memory=4096, cpu=None, cores=4, sockets=None, tags="a,b")
    check(result is None, f"PUT config returns null: {result!r}")
    pending_cfg = prox.nodes(node).qemu(newid).config.get(current=0)
    current_cfg = prox.nodes(node).qemu(newid).config.get(current=1)
    check(pending_cfg["cores"] == 4 and pending_cfg["memory"] == "4096", f"config=pending shows new values: {pending_cfg}")
    check(current_cfg["cores"] != 4, f"config=current shows the running values: {current_cfg}")
    check(current_cfg["tags"] == "a;b", f"fast-plug tags applied at once: {current_cfg}")
    pending = {e["key"]: e for e in prox.nodes(node).qemu(newid).pending.get()}
    check(pending["cores"].get("pending") == 4, f"pending entry for cores: {pending.get('cores')}")
    check("pending" not in pending["tags"], f"tags not pending: {pending['tags']}")
    check(len(pending["digest"]["value"]) == 40, "digest listed in pending")
    prox.nodes(node).qemu(newid).config.set(revert="memory")
    check(prox.nodes(node).qemu(newid).config.get()["memory"] != "4096", "revert drops the pending memory")

    step("proxmox_kvm state=restarted: status/reboot applies pending changes")
    vm = mod.get_vm(newid)
    check(mod.current_status(vm) == "running", "running before restart")
    upid = prox.nodes(vm["node"]).qemu(newid).status.reboot.post()
    check(f":qmreboot:{newid}:" in upid, f"reboot UPID: {upid}")
    mod.wait_for_task(vm["node"], upid)
    current_cfg = prox.nodes(node).qemu(newid).config.get(current=1)
    check(current_cfg["cores"] == 4, f"pending cores applied by the reboot: {current_cfg}")
    check(prox.nodes(node).qemu(newid).status.current.get()["status"] == "running", "running after reboot")

    step("proxmox_kvm state=restarted force=true: status/reset")
    upid = prox.nodes(vm["node"]).qemu(newid).status.reset.post()
    check(f":qmreset:{newid}:" in upid, f"reset UPID: {upid}")
    mod.wait_for_task(vm["node"], upid)

    step("proxmox_kvm state=paused: suspend (the module's extra 'timeout' is not in PVE's schema)")
    e = expect_error(
        lambda: prox.nodes(node).qemu(newid).status.suspend.post(todisk=0, timeout=30),
        400, "Parameter verification failed", "suspend with timeout",
    )
    check(e.errors and "timeout" in e.errors, f"errors names timeout: {e.errors}")
    upid = prox.nodes(node).qemu(newid).status.suspend.post(todisk=0)
    check(f":qmpause:{newid}:" in upid, f"pause UPID: {upid}")
    mod.wait_for_task(node, upid)
    status = prox.nodes(node).qemu(newid).status.current.get()
    check(status["status"] == "running" and status["qmpstatus"] == "paused", f"paused: {status}")

    step("proxmox_kvm state=stopped: a paused VM refuses a plain shutdown")
    expect_error(
        lambda: prox.nodes(node).qemu(newid).status.shutdown.post(forceStop=0, timeout=30),
        500, "VM is paused - cannot shutdown", "shutdown of a paused VM",
    )
    mod.wait_for_task(node, prox.nodes(node).qemu(newid).status.resume.post())
    vm = mod.get_vm(newid)
    check(mod.current_status(vm) == "running", "running after resume")
    upid = prox.nodes(vm["node"]).qemu(newid).status.shutdown.post(forceStop=0, timeout=30)
    check(f":qmshutdown:{newid}:" in upid, f"shutdown UPID: {upid}")
    mod.wait_for_task(vm["node"], upid)
    check(mod.current_status(vm) == "stopped", "stopped after shutdown")
    expect_error(lambda: prox.nodes(node).qemu(newid).status.reboot.post(), 500, f"VM {newid} not running", "reboot a stopped VM")

    step("proxmox_kvm delete of settings (stopped VM: applied at once)")
    prox.nodes(node).qemu(newid).config.set(delete="tags")
    check("tags" not in prox.nodes(node).qemu(newid).config.get(), "tags deleted")

    step("proxmox_tasks_info: GET /nodes/{node}/tasks, then find one UPID")
    tasks = prox.nodes(node).tasks.get()
    check(tasks and all("upid" in t and "type" in t and "user" in t for t in tasks), f"task list shape: {tasks[:2]}")
    mine = [t for t in tasks if t["upid"] == upid]
    check(mine and mine[0]["status"] == "OK" and "endtime" in mine[0], f"finished shutdown listed with status OK: {mine}")
    failed = [t for t in tasks if t.get("status") not in (None, "OK")]
    check(any(t["status"] == f"VM {newid} already running" for t in failed), f"failed start listed with its error: {failed}")
    log = prox.nodes(node).tasks(upid).log.get()
    check(log and log[-1]["t"] == "TASK OK", f"task log ends with TASK OK: {log}")

    step("proxmox_kvm state=template: template flag from cluster/resources, then POST template")
    vm = wait_resources(mod, createid, "status", "stopped", lag_s)
    check(vm["template"] == 0, f"not a template yet: {vm}")
    check(mod.current_status(vm) == "stopped", "stopped before templating")
    upid = prox.nodes(vm["node"]).qemu(createid).template.post()
    check(isinstance(upid, str) and f":qmtemplate:{createid}:" in upid, f"template returns a UPID: {upid!r}")
    mod.wait_for_task(node, upid)
    vm = wait_resources(mod, createid, "template", 1, lag_s)

    step("proxmox_kvm state=absent: running VM + force -> shutdown(forceStop=1), then DELETE purge=1")
    mod.wait_for_task(node, prox.nodes(node).qemu(newid).status.start.post())
    vm = mod.get_vm(newid)
    check(mod.current_status(vm) == "running", "running before absent")
    expect_error(lambda: prox.nodes(node).qemu.delete(newid), 500, "is running - destroy failed", "destroy while running")
    mod.wait_for_task(node, prox.nodes(node).qemu(newid).status.shutdown.post(forceStop=1, timeout=30))
    upid = prox.nodes(node).qemu.delete(newid, purge=1)
    check(f":qmdestroy:{newid}:" in upid, f"destroy UPID: {upid}")
    mod.wait_for_task(node, upid)
    mod.wait_for_task(node, prox.nodes(node).qemu.delete(createid, purge=1))
    check(mod.get_vm(newid) is None and mod.get_vm(createid) is None, "gone from cluster/resources")
    expect_error(lambda: prox.nodes(node).qemu(newid).status.current.get(), 500, "does not exist", "status of a destroyed VM")

    print("ansible call sequence: OK", flush=True)


if __name__ == "__main__":
    main()
