//! The API routes: method + path template, declared parameters, and the handler behind each.

use crate::params::{INT0, P, PType, opt, req};

/// Which handler serves a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Version,
    Nodes,
    NodeStatus,
    NodeStorage,
    NodeTasks,
    TaskIndex,
    TaskStatus,
    TaskLog,
    QemuList,
    QemuCreate,
    VmIndex,
    VmDestroy,
    ConfigGet,
    ConfigPost,
    ConfigPut,
    Clone,
    Template,
    StatusCurrent,
    Start,
    Stop,
    Shutdown,
    AgentPing,
    AgentNetwork,
    AgentGet,
    AgentPost,
    AgentCommand,
    Pending,
    StatusIndex,
    Reboot,
    Reset,
    Suspend,
    Resume,
    LxcList,
    StorageContent,
    Pool,
    Resources,
    NextId,
    Ticket,
    Pools,
}

/// One route.
pub(crate) struct RouteDef {
    pub method: &'static str,
    pub template: &'static str,
    pub route: Route,
    pub params: &'static [P],
    /// Accepts every VM config key as a parameter.
    pub config_keys: bool,
    /// No authentication needed.
    pub public: bool,
}

const NODE: P = req("node", PType::Node);
const VMID: P = req("vmid", PType::VmId);
const SKIPLOCK: P = opt("skiplock", PType::Bool);
const TIMEOUT: P = opt("timeout", INT0);
const CONFIG_CTRL: [P; 9] = [
    NODE,
    VMID,
    SKIPLOCK,
    opt("digest", PType::Str),
    opt("delete", PType::Str),
    opt("revert", PType::Str),
    opt("force", PType::Bool),
    opt("background_delay", PType::Int { min: 1, max: 30 }),
    opt("import-working-storage", PType::Str),
];

macro_rules! r {
    ($m:literal, $t:literal, $r:ident, $p:expr) => {
        RouteDef {
            method: $m,
            template: $t,
            route: Route::$r,
            params: $p,
            config_keys: false,
            public: false,
        }
    };
    ($m:literal, $t:literal, $r:ident, $p:expr, config) => {
        RouteDef {
            method: $m,
            template: $t,
            route: Route::$r,
            params: $p,
            config_keys: true,
            public: false,
        }
    };
}

/// Every route the simulator serves.
pub(crate) static ROUTES: &[RouteDef] = &[
    r!("GET", "/version", Version, &[]),
    r!("GET", "/nodes", Nodes, &[]),
    r!(
        "GET",
        "/pools",
        Pools,
        &[
            opt("poolid", PType::Str),
            opt("type", PType::Enum(&["qemu", "lxc", "storage"]))
        ]
    ),
    r!(
        "GET",
        "/pools/{poolid}",
        Pool,
        &[
            req("poolid", PType::Str),
            opt("type", PType::Enum(&["qemu", "lxc", "storage"]))
        ]
    ),
    r!("GET", "/nodes/{node}/status", NodeStatus, &[NODE]),
    r!("GET", "/nodes/{node}/lxc", LxcList, &[NODE]),
    r!(
        "GET",
        "/nodes/{node}/storage/{storage}/content",
        StorageContent,
        &[
            NODE,
            req("storage", PType::Str),
            opt("content", PType::Str),
            opt("vmid", PType::VmId)
        ]
    ),
    r!(
        "GET",
        "/nodes/{node}/storage",
        NodeStorage,
        &[
            NODE,
            opt("content", PType::Str),
            opt("enabled", PType::Bool),
            opt("format", PType::Bool),
            opt("storage", PType::Str),
            opt("target", PType::Str)
        ]
    ),
    r!(
        "GET",
        "/nodes/{node}/tasks",
        NodeTasks,
        &[
            NODE,
            opt("errors", PType::Bool),
            opt("limit", INT0),
            opt("since", INT0),
            opt("source", PType::Enum(&["archive", "active", "all"])),
            opt("start", INT0),
            opt("statusfilter", PType::Str),
            opt("typefilter", PType::Str),
            opt("until", INT0),
            opt("userfilter", PType::Str),
            opt("vmid", PType::VmId)
        ]
    ),
    r!(
        "GET",
        "/nodes/{node}/tasks/{upid}",
        TaskIndex,
        &[NODE, req("upid", PType::Str)]
    ),
    r!(
        "GET",
        "/nodes/{node}/tasks/{upid}/status",
        TaskStatus,
        &[NODE, req("upid", PType::Str)]
    ),
    r!(
        "GET",
        "/nodes/{node}/tasks/{upid}/log",
        TaskLog,
        &[
            NODE,
            req("upid", PType::Str),
            opt("start", INT0),
            opt("limit", INT0),
            opt("download", PType::Bool)
        ]
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu",
        QemuList,
        &[NODE, opt("full", PType::Bool)]
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu",
        QemuCreate,
        &[
            NODE,
            VMID,
            opt("pool", PType::Str),
            opt("storage", PType::Str),
            opt("start", PType::Bool),
            opt("unique", PType::Bool),
            opt("force", PType::Bool),
            opt("archive", PType::Str),
            opt("bwlimit", INT0),
            opt("live-restore", PType::Bool),
            opt("import-working-storage", PType::Str)
        ],
        config
    ),
    r!("GET", "/nodes/{node}/qemu/{vmid}", VmIndex, &[NODE, VMID]),
    r!(
        "DELETE",
        "/nodes/{node}/qemu/{vmid}",
        VmDestroy,
        &[
            NODE,
            VMID,
            SKIPLOCK,
            opt("purge", PType::Bool),
            opt("destroy-unreferenced-disks", PType::Bool)
        ]
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/config",
        ConfigGet,
        &[
            NODE,
            VMID,
            opt("current", PType::Bool),
            opt("snapshot", PType::Str)
        ]
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/config",
        ConfigPost,
        &CONFIG_CTRL,
        config
    ),
    r!(
        "PUT",
        "/nodes/{node}/qemu/{vmid}/config",
        ConfigPut,
        &CONFIG_CTRL,
        config
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/clone",
        Clone,
        &[
            NODE,
            VMID,
            req("newid", PType::VmId),
            opt("name", PType::DnsName),
            opt("description", PType::Str),
            opt("pool", PType::Str),
            opt("snapname", PType::Str),
            opt("storage", PType::Str),
            opt("format", PType::Enum(&["raw", "qcow2", "vmdk"])),
            opt("full", PType::Bool),
            opt("target", PType::Node),
            opt("bwlimit", INT0)
        ]
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/template",
        Template,
        &[NODE, VMID, opt("disk", PType::Str)]
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/status/current",
        StatusCurrent,
        &[NODE, VMID]
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/start",
        Start,
        &[
            NODE,
            VMID,
            SKIPLOCK,
            TIMEOUT,
            opt("machine", PType::Str),
            opt("stateuri", PType::Str),
            opt("migratedfrom", PType::Node),
            opt("migration_type", PType::Str),
            opt("migration_network", PType::Str),
            opt("targetstorage", PType::Str),
            opt("force-cpu", PType::Str),
            opt("nets-host-mtu", PType::Str)
        ]
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/stop",
        Stop,
        &[
            NODE,
            VMID,
            SKIPLOCK,
            TIMEOUT,
            opt("keepActive", PType::Bool),
            opt("migratedfrom", PType::Node),
            opt("overrule-shutdown", PType::Bool)
        ]
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/shutdown",
        Shutdown,
        &[
            NODE,
            VMID,
            SKIPLOCK,
            TIMEOUT,
            opt("keepActive", PType::Bool),
            opt("forceStop", PType::Bool)
        ]
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/agent/ping",
        AgentPing,
        &[NODE, VMID]
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces",
        AgentNetwork,
        &[NODE, VMID]
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/agent/{command}",
        AgentGet,
        &[NODE, VMID, req("command", PType::Str)]
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/agent/{command}",
        AgentPost,
        &[NODE, VMID, req("command", PType::Str)]
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/agent",
        AgentCommand,
        &[
            NODE,
            VMID,
            req(
                "command",
                PType::Enum(&[
                    "fsfreeze-freeze",
                    "fsfreeze-status",
                    "fsfreeze-thaw",
                    "fstrim",
                    "get-fsinfo",
                    "get-host-name",
                    "get-memory-block-info",
                    "get-memory-blocks",
                    "get-osinfo",
                    "get-time",
                    "get-timezone",
                    "get-users",
                    "get-vcpus",
                    "info",
                    "network-get-interfaces",
                    "ping",
                    "shutdown",
                    "suspend-disk",
                    "suspend-hybrid",
                    "suspend-ram"
                ])
            )
        ]
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/pending",
        Pending,
        &[NODE, VMID]
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/status",
        StatusIndex,
        &[NODE, VMID]
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/reboot",
        Reboot,
        &[NODE, VMID, TIMEOUT]
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/reset",
        Reset,
        &[NODE, VMID, SKIPLOCK]
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/suspend",
        Suspend,
        &[
            NODE,
            VMID,
            SKIPLOCK,
            opt("todisk", PType::Bool),
            opt("statestorage", PType::Str)
        ]
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/resume",
        Resume,
        &[NODE, VMID, SKIPLOCK, opt("nocheck", PType::Bool)]
    ),
    r!(
        "GET",
        "/cluster/resources",
        Resources,
        &[opt("type", PType::Enum(&["vm", "storage", "node", "sdn"]))]
    ),
    r!(
        "GET",
        "/cluster/nextid",
        NextId,
        &[opt("vmid", PType::VmId)]
    ),
    RouteDef {
        method: "POST",
        template: "/access/ticket",
        route: Route::Ticket,
        params: &[
            req("username", PType::Str),
            req("password", PType::Str),
            opt("realm", PType::Str),
            opt("otp", PType::Str),
            opt("tfa-challenge", PType::Str),
            opt("new-format", PType::Bool),
            opt("path", PType::Str),
            opt("privs", PType::Str),
        ],
        config_keys: false,
        public: true,
    },
];

/// A matched route with its path parameters (percent-decoded).
pub(crate) struct Matched {
    pub def: &'static RouteDef,
    pub path_params: Vec<(String, String)>,
}

/// Find the route for `method` and the path below `/api2/json` (e.g. `/nodes/pve1/qemu`).
pub(crate) fn find(method: &str, rel: &str) -> Option<Matched> {
    let segs: Vec<&str> = rel
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    'routes: for def in ROUTES.iter().filter(|d| d.method == method) {
        let tsegs: Vec<&str> = def.template.trim_matches('/').split('/').collect();
        if tsegs.len() != segs.len() {
            continue;
        }
        let mut params = Vec::new();
        for (t, s) in tsegs.iter().zip(&segs) {
            if let Some(name) = t.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
                let v = percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned();
                params.push((name.to_string(), v));
            } else if t != s {
                continue 'routes;
            }
        }
        return Some(Matched {
            def,
            path_params: params,
        });
    }
    None
}
