//! Dispatch of a validated request to its handler, and checks shared by the handlers.

use std::sync::Arc;

use crate::auth::Identity;
use crate::http::Reply;
use crate::model::{Cluster, Shared, Vm};
use crate::params::{ApiError, Params, flag};
use crate::routes::Route;
use crate::{api_access, api_agent, api_clone, api_cluster, api_power, api_tasks, api_vm};

/// Everything a handler gets.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Arc<Shared>,
    pub ident: &'a Identity,
    pub p: Params,
    /// The URL's node, resolved (`localhost` → the local node).
    pub node: String,
}

impl Ctx<'_> {
    pub fn vmid(&self) -> u32 {
        self.p.get("vmid").and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    pub fn require(&self, path: &str, privilege: &str) -> Result<(), ApiError> {
        if self.ident.has(privilege) {
            Ok(())
        } else {
            Err(ApiError::forbidden(path, privilege))
        }
    }

    pub fn require_vm(&self, vmid: u32, privilege: &str) -> Result<(), ApiError> {
        self.require(&format!("/vms/{vmid}"), privilege)
    }

    /// `skiplock` is for `root@pam` only.
    pub fn skiplock(&self) -> Result<bool, ApiError> {
        let s = flag(&self.p, "skiplock");
        if s && !self.ident.is_root() {
            return Err(ApiError::param(
                "skiplock",
                "Only root may use this option.",
            ));
        }
        Ok(s)
    }
}

/// `localhost` → the local (first) node; unknown → hostname lookup failure; offline → 595.
pub(crate) fn resolve_node(shared: &Shared, n: &str) -> Result<String, ApiError> {
    let cl = shared.lock();
    let name = if n == "localhost" {
        cl.nodes.first().map(|n| n.name.clone()).unwrap_or_default()
    } else {
        n.to_string()
    };
    match cl.node(&name) {
        None => Err(ApiError::internal(format!(
            "hostname lookup '{name}' failed - failed to get address info for: {name}: Name or service not known"
        ))),
        Some(node) if !node.online => Err(ApiError::Plain {
            code: 595,
            reason: "No route to host".into(),
            body: String::new(),
        }),
        Some(_) => Ok(name),
    }
}

pub(crate) fn config_missing(node: &str, vmid: u32) -> ApiError {
    ApiError::internal(format!(
        "Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
    ))
}

/// The VM `vmid` on `node` (PVE reads `nodes/<node>/qemu-server/<vmid>.conf`).
pub(crate) fn vm_on<'c>(cl: &'c Cluster, node: &str, vmid: u32) -> Result<&'c Vm, ApiError> {
    cl.vms
        .get(&vmid)
        .filter(|vm| vm.node == node)
        .ok_or_else(|| config_missing(node, vmid))
}

pub(crate) fn vm_on_mut<'c>(
    cl: &'c mut Cluster,
    node: &str,
    vmid: u32,
) -> Result<&'c mut Vm, ApiError> {
    cl.vms
        .get_mut(&vmid)
        .filter(|vm| vm.node == node)
        .ok_or_else(|| config_missing(node, vmid))
}

/// `VM is locked (<lock>)`.
pub(crate) fn check_lock(vm: &Vm) -> Result<(), String> {
    match vm.lock() {
        Some(l) => Err(format!("VM is locked ({l})")),
        None => Ok(()),
    }
}

pub(crate) fn file_lock_timeout(vmid: u32) -> String {
    format!("can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout")
}

pub(crate) async fn dispatch(
    shared: &Arc<Shared>,
    ident: &Identity,
    route: Route,
    p: Params,
    node: String,
) -> Result<Reply, ApiError> {
    let ctx = Ctx {
        shared,
        ident,
        p,
        node,
    };
    match route {
        Route::Version => api_cluster::version(&ctx),
        Route::Nodes => api_cluster::nodes(&ctx),
        Route::NodeStatus => api_cluster::node_status(&ctx),
        Route::NodeStorage => api_cluster::node_storage(&ctx),
        Route::Resources => api_cluster::resources(&ctx),
        Route::NextId => api_cluster::nextid(&ctx),
        Route::Pools => api_cluster::pools(&ctx),
        Route::NodeTasks => api_tasks::list(&ctx),
        Route::TaskIndex => api_tasks::index(&ctx),
        Route::TaskStatus => api_tasks::status(&ctx),
        Route::TaskLog => api_tasks::log(&ctx),
        Route::Ticket => api_access::ticket(&ctx),
        Route::AgentPing => api_agent::ping(&ctx),
        Route::AgentNetwork => api_agent::network(&ctx),
        Route::AgentGet => api_agent::command(&ctx, api_agent::Via::Get),
        Route::AgentPost => api_agent::command(&ctx, api_agent::Via::Post),
        Route::AgentCommand => api_agent::command(&ctx, api_agent::Via::Generic),
        Route::Pending => api_vm::pending(&ctx),
        Route::StatusIndex => api_vm::status_index(&ctx),
        Route::Reboot => api_power::reboot(&ctx),
        Route::Reset => api_power::reset(&ctx),
        Route::Suspend => api_power::suspend(&ctx),
        Route::Resume => api_power::resume(&ctx),
        Route::LxcList => Ok(Reply::data(serde_json::json!([]))),
        Route::Pool => api_cluster::pool(&ctx),
        Route::StorageContent => api_cluster::storage_content(&ctx),
        Route::Clone => api_clone::clone_vm(&ctx),
        Route::QemuList => api_vm::list(&ctx),
        Route::QemuCreate => api_vm::create(&ctx),
        Route::VmIndex => api_vm::index(&ctx),
        Route::VmDestroy => api_vm::destroy(&ctx),
        Route::ConfigGet => api_vm::config_get(&ctx),
        Route::ConfigPut => {
            api_vm::config_update(&ctx, false).map(|_| Reply::data(serde_json::Value::Null))
        }
        Route::ConfigPost => api_vm::config_post(&ctx).await,
        Route::Template => api_vm::template(&ctx),
        Route::StatusCurrent => api_vm::status_current(&ctx),
        Route::Start => api_vm::start(&ctx),
        Route::Stop => api_vm::stop(&ctx, false),
        Route::Shutdown => api_vm::stop(&ctx, true),
    }
}
