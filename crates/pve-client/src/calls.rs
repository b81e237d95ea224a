//! The typed PVE calls reborn needs, one method per endpoint.

use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::client::PveClient;
use crate::error::{Endpoint, Error};
use crate::form::{CloneParams, ConfigUpdate, DestroyParams, Params, pve_urlencode};
use crate::ids::{NodeName, VmId};
use crate::types::{
    AgentInterface, ClusterVm, NodeInfo, QemuVm, TaskLog, TaskLogLine, TaskStatus, Version,
    VmConfig, VmStatus,
};
use crate::upid::Upid;

/// `data` of a task log: an array, or (for an unknown UPID) a single object.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

/// `{"result": ...}` of the guest-agent endpoints.
#[derive(Deserialize)]
struct AgentReply {
    #[serde(default)]
    result: serde_json::Value,
}

fn vm_path(node: &NodeName, vmid: VmId) -> String {
    format!("/nodes/{node}/qemu/{vmid}")
}

impl PveClient {
    async fn get<T: DeserializeOwned>(&self, path: &str, params: &Params) -> Result<T, Error> {
        Ok(self.call(Method::GET, path, params).await?.data)
    }

    /// A mutation that PVE documents as returning a UPID (or `null`): `None` means PVE did the
    /// work synchronously and there is no task to wait for.
    async fn mutate(
        &self,
        method: Method,
        path: &str,
        params: &Params,
    ) -> Result<Option<Upid>, Error> {
        let upid: Option<Upid> = self.call(method.clone(), path, params).await?.data;
        if let Some(upid) = &upid {
            tracing::info!(%method, path, %upid, "PVE task started");
        }
        Ok(upid)
    }

    /// `GET /version`.
    pub async fn version(&self) -> Result<Version, Error> {
        self.get("/version", &Params::new()).await
    }

    /// `GET /nodes`: the cluster's nodes.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        self.get("/nodes", &Params::new()).await
    }

    /// `GET /cluster/resources?type=vm`: every guest (QEMU and LXC) in the cluster the
    /// identity may see, in one call.
    pub async fn cluster_vms(&self) -> Result<Vec<ClusterVm>, Error> {
        let mut p = Params::new();
        p.push("type", "vm");
        let (endpoint, body) = self.call_raw(Method::GET, "/cluster/resources", &p).await?;
        crate::decode::cluster_resources(&body).map_err(|source| Error::Decode { endpoint, source })
    }

    /// `GET /cluster/nextid`: the first free VM id. A hint only: PVE does not reserve it.
    pub async fn next_id(&self) -> Result<VmId, Error> {
        self.get("/cluster/nextid", &Params::new()).await
    }

    /// `GET /cluster/nextid?vmid=<id>`: `true` if `vmid` is unused cluster-wide right now.
    pub async fn vmid_is_free(&self, vmid: VmId) -> Result<bool, Error> {
        let mut p = Params::new();
        p.push("vmid", vmid.to_string());
        match self.get::<VmId>("/cluster/nextid", &p).await {
            Ok(_) => Ok(true),
            Err(Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET /nodes/{node}/qemu`: the QEMU VMs on one node.
    pub async fn qemu_list(&self, node: &NodeName) -> Result<Vec<QemuVm>, Error> {
        self.get(&format!("/nodes/{node}/qemu"), &Params::new())
            .await
    }

    /// `GET /nodes/{node}/qemu/{vmid}/config` (pending changes merged, as PVE's default).
    pub async fn vm_config(&self, node: &NodeName, vmid: VmId) -> Result<VmConfig, Error> {
        self.get(&format!("{}/config", vm_path(node, vmid)), &Params::new())
            .await
    }

    /// `PUT /nodes/{node}/qemu/{vmid}/config`: synchronous update. Returns `None` (PVE's
    /// documented `null`), or a UPID should PVE ever answer with one.
    pub async fn update_config(
        &self,
        node: &NodeName,
        vmid: VmId,
        update: &ConfigUpdate,
    ) -> Result<Option<Upid>, Error> {
        self.mutate(
            Method::PUT,
            &format!("{}/config", vm_path(node, vmid)),
            &update.to_params(),
        )
        .await
    }

    /// `POST /nodes/{node}/qemu/{vmid}/config`: asynchronous update (task `qmconfig`).
    pub async fn update_config_async(
        &self,
        node: &NodeName,
        vmid: VmId,
        update: &ConfigUpdate,
    ) -> Result<Option<Upid>, Error> {
        self.mutate(
            Method::POST,
            &format!("{}/config", vm_path(node, vmid)),
            &update.to_params(),
        )
        .await
    }

    /// `POST /nodes/{node}/qemu/{vmid}/clone`. The task's id is the **source** vmid; track
    /// the new VM by `params.newid`.
    pub async fn clone_vm(
        &self,
        node: &NodeName,
        vmid: VmId,
        params: &CloneParams,
    ) -> Result<Option<Upid>, Error> {
        self.mutate(
            Method::POST,
            &format!("{}/clone", vm_path(node, vmid)),
            &params.to_params(),
        )
        .await
    }

    /// `POST /nodes/{node}/qemu/{vmid}/template`: convert a stopped VM into a template.
    pub async fn template(&self, node: &NodeName, vmid: VmId) -> Result<Option<Upid>, Error> {
        self.mutate(
            Method::POST,
            &format!("{}/template", vm_path(node, vmid)),
            &Params::new(),
        )
        .await
    }

    /// `GET /nodes/{node}/qemu/{vmid}/status/current`.
    pub async fn vm_status(&self, node: &NodeName, vmid: VmId) -> Result<VmStatus, Error> {
        let mut status: VmStatus = self
            .get(
                &format!("{}/status/current", vm_path(node, vmid)),
                &Params::new(),
            )
            .await?;
        status.vmid.get_or_insert(vmid);
        Ok(status)
    }

    /// `POST .../status/start`. Failures (already running, template, locked) are task errors.
    pub async fn start(&self, node: &NodeName, vmid: VmId) -> Result<Option<Upid>, Error> {
        self.power(node, vmid, "start").await
    }

    /// `POST .../status/stop`: hard stop (a stopped VM is a no-op success).
    pub async fn stop(&self, node: &NodeName, vmid: VmId) -> Result<Option<Upid>, Error> {
        self.power(node, vmid, "stop").await
    }

    /// `POST .../status/shutdown`: ACPI / guest-agent shutdown.
    pub async fn shutdown(&self, node: &NodeName, vmid: VmId) -> Result<Option<Upid>, Error> {
        self.power(node, vmid, "shutdown").await
    }

    async fn power(
        &self,
        node: &NodeName,
        vmid: VmId,
        action: &str,
    ) -> Result<Option<Upid>, Error> {
        self.mutate(
            Method::POST,
            &format!("{}/status/{action}", vm_path(node, vmid)),
            &Params::new(),
        )
        .await
    }

    /// `DELETE /nodes/{node}/qemu/{vmid}`. The VM must be stopped.
    pub async fn destroy(
        &self,
        node: &NodeName,
        vmid: VmId,
        params: &DestroyParams,
    ) -> Result<Option<Upid>, Error> {
        self.mutate(Method::DELETE, &vm_path(node, vmid), &params.to_params())
            .await
    }

    async fn agent<T: DeserializeOwned>(
        &self,
        method: Method,
        node: &NodeName,
        vmid: VmId,
        command: &str,
    ) -> Result<T, Error> {
        let path = format!("{}/agent/{command}", vm_path(node, vmid));
        let reply: AgentReply = self.call(method.clone(), &path, &Params::new()).await?.data;
        let endpoint = Endpoint { method, path };
        if let Some(err) = reply.result.get("error") {
            let text = |k: &str| {
                err.get(k)
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            return Err(Error::Agent {
                endpoint,
                class: text("class"),
                desc: text("desc"),
            });
        }
        serde_json::from_value(reply.result).map_err(|source| Error::Decode { endpoint, source })
    }

    /// `POST .../agent/ping`: `Ok(())` when the guest agent answers.
    pub async fn agent_ping(&self, node: &NodeName, vmid: VmId) -> Result<(), Error> {
        let _: serde_json::Value = self.agent(Method::POST, node, vmid, "ping").await?;
        Ok(())
    }

    /// `GET .../agent/network-get-interfaces`: the guest's interfaces and addresses.
    pub async fn agent_network_interfaces(
        &self,
        node: &NodeName,
        vmid: VmId,
    ) -> Result<Vec<AgentInterface>, Error> {
        self.agent(Method::GET, node, vmid, "network-get-interfaces")
            .await
    }

    fn task_path(upid: &Upid, what: &str) -> String {
        format!(
            "/nodes/{}/tasks/{}/{what}",
            upid.node(),
            pve_urlencode(upid.as_str())
        )
    }

    /// `GET /nodes/{node}/tasks/{upid}/status` (read on the node the task runs on).
    pub async fn task_status(&self, upid: &Upid) -> Result<TaskStatus, Error> {
        self.get(&Self::task_path(upid, "status"), &Params::new())
            .await
    }

    /// `GET /nodes/{node}/tasks/{upid}/log?start=&limit=` (`limit` 0 = all lines).
    pub async fn task_log(&self, upid: &Upid, start: u64, limit: u64) -> Result<TaskLog, Error> {
        let mut p = Params::new();
        p.push("start", start.to_string())
            .push("limit", limit.to_string());
        let env = self
            .call::<OneOrMany<TaskLogLine>>(Method::GET, &Self::task_path(upid, "log"), &p)
            .await?;
        let lines = match env.data {
            OneOrMany::Many(lines) => lines,
            OneOrMany::One(line) => vec![line],
        };
        Ok(TaskLog {
            lines,
            total: env.total,
        })
    }
}
