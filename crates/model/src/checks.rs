//! Checks across documents and files: duplicate names, references, VMID ranges, budgets, addresses.

use crate::diagnostics::{Diagnostic, SourceFile};
use crate::kinds::{Kind, Manifest};
use crate::values::{Labels, Name};
use crate::yaml::Span;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

/// A document that decoded into a manifest.
pub(crate) struct Loaded {
    pub file: usize,
    pub manifest: Manifest,
    /// Span of every decoded value by path (`spec.vmids`, `spec.network[0].address`, ...).
    pub spans: HashMap<String, crate::yaml::Span>,
    pub doc_span: Span,
}

impl Loaded {
    fn span(&self, path: &str) -> Span {
        self.spans.get(path).copied().unwrap_or(self.doc_span)
    }
}

/// A resource name that was declared, even by a document with other errors.
pub(crate) struct Declared {
    pub kind: Kind,
    pub name: Name,
    pub labels: Option<Labels>,
    pub file: usize,
    /// Span of `metadata.name`.
    pub span: Span,
}

fn at(sources: &[SourceFile], file: usize, span: Span) -> String {
    let name = sources.get(file).map_or("?", |s| s.name.as_str());
    format!("{name}:{}:{}", span.start.line, span.start.col)
}

fn diag(
    sources: &[SourceFile],
    file: usize,
    span: Span,
    message: String,
    help: String,
) -> Option<Diagnostic> {
    sources
        .get(file)
        .map(|s| s.diagnostic(span, message, Some(help)))
}

/// Runs every cross-document check. Reference checks (undeclared gold image, budget selecting
/// nothing) are skipped when a file had a YAML syntax error, since the missing declaration may
/// be in the unreadable part.
pub(crate) fn check(
    sources: &[SourceFile],
    loaded: &[Loaded],
    declared: &[Declared],
    syntax_error: bool,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    duplicate_names(sources, declared, &mut out);
    if !syntax_error {
        gold_image_references(sources, loaded, declared, &mut out);
        budgets_select_something(sources, loaded, declared, &mut out);
    }
    vmid_ranges(sources, loaded, &mut out);
    duplicate_addresses(sources, loaded, &mut out);
    out
}

fn duplicate_names(sources: &[SourceFile], declared: &[Declared], out: &mut Vec<Diagnostic>) {
    let mut first: HashMap<(Kind, &Name), &Declared> = HashMap::new();
    for d in declared {
        match first.get(&(d.kind, &d.name)) {
            None => {
                first.insert((d.kind, &d.name), d);
            }
            Some(prev) => out.extend(diag(
                sources,
                d.file,
                d.span,
                format!("duplicate {} `{}`", d.kind, d.name),
                format!(
                    "first declared at {}; names must be unique per kind: rename or remove one",
                    at(sources, prev.file, prev.span)
                ),
            )),
        }
    }
}

fn gold_image_references(
    sources: &[SourceFile],
    loaded: &[Loaded],
    declared: &[Declared],
    out: &mut Vec<Diagnostic>,
) {
    let images: BTreeSet<&str> = declared
        .iter()
        .filter(|d| d.kind == Kind::GoldImage)
        .map(|d| d.name.as_str())
        .collect();
    let candidates: Vec<&str> = images.iter().copied().collect();
    for l in loaded {
        let Manifest::Node(node) = &l.manifest else {
            continue;
        };
        let wanted = node.spec.gold_image.as_str();
        if !images.contains(wanted) {
            out.extend(diag(
                sources,
                l.file,
                l.span("spec.goldImage"),
                format!(
                    "Node `{}` refers to GoldImage `{wanted}`, which is not declared",
                    node.name()
                ),
                crate::suggest::help_for(wanted, &candidates, "gold images"),
            ));
        }
    }
}

fn budgets_select_something(
    sources: &[SourceFile],
    loaded: &[Loaded],
    declared: &[Declared],
    out: &mut Vec<Diagnostic>,
) {
    let node_labels: Vec<&Labels> = declared
        .iter()
        .filter(|d| d.kind == Kind::Node)
        .filter_map(|d| d.labels.as_ref())
        .collect();
    let in_use: BTreeSet<String> = node_labels
        .iter()
        .flat_map(|l| l.iter().map(|(k, v)| format!("{k}={v}")))
        .collect();
    for l in loaded {
        let Manifest::DisruptionBudget(b) = &l.manifest else {
            continue;
        };
        if node_labels
            .iter()
            .any(|labels| b.spec.selector.matches(labels))
        {
            continue;
        }
        let help = if in_use.is_empty() {
            "no Node has any labels; add labels to the nodes this budget should cover".to_string()
        } else {
            let list: Vec<String> = in_use.iter().map(|p| format!("`{p}`")).collect();
            format!("node labels in use: {}", list.join(", "))
        };
        out.extend(diag(
            sources,
            l.file,
            l.span("spec.selector"),
            format!(
                "DisruptionBudget `{}` selects no Node (selector `{}`)",
                b.name(),
                b.spec.selector
            ),
            help,
        ));
    }
}

fn vmid_ranges(sources: &[SourceFile], loaded: &[Loaded], out: &mut Vec<Diagnostic>) {
    let nodes: Vec<(&Loaded, &crate::kinds::Node)> = loaded
        .iter()
        .filter_map(|l| match &l.manifest {
            Manifest::Node(n) => Some((l, n)),
            _ => None,
        })
        .collect();
    for (j, (lj, nj)) in nodes.iter().enumerate() {
        if let Some((li, ni)) = nodes[..j]
            .iter()
            .find(|(_, ni)| ni.spec.vmids.overlaps(&nj.spec.vmids))
        {
            out.extend(diag(
                sources,
                lj.file,
                lj.span("spec.vmids"),
                format!(
                    "VMID range {} of Node `{}` overlaps range {} of Node `{}`",
                    nj.spec.vmids,
                    nj.name(),
                    ni.spec.vmids,
                    ni.name()
                ),
                format!(
                    "`{}` is declared at {}; give each node its own range",
                    ni.name(),
                    at(sources, li.file, li.span("spec.vmids"))
                ),
            ));
        }
    }
    for l in loaded {
        let Manifest::GoldImage(g) = &l.manifest else {
            continue;
        };
        let Some(vmid) = g.spec.template.vmid else {
            continue;
        };
        if let Some((_, n)) = nodes.iter().find(|(_, n)| n.spec.vmids.contains(vmid)) {
            out.extend(diag(
                sources,
                l.file,
                l.span("spec.template.vmid"),
                format!(
                    "template VM {vmid} of GoldImage `{}` lies in the VMID range {} of Node `{}`",
                    g.name(),
                    n.spec.vmids,
                    n.name()
                ),
                "reborn allocates node instances from that range; keep templates outside every node range".to_string(),
            ));
        }
    }
}

fn duplicate_addresses(sources: &[SourceFile], loaded: &[Loaded], out: &mut Vec<Diagnostic>) {
    let mut first: BTreeMap<IpAddr, (&Loaded, &Name, String)> = BTreeMap::new();
    for l in loaded {
        let Manifest::Node(n) = &l.manifest else {
            continue;
        };
        for (i, nic) in n.spec.network.iter().enumerate() {
            let Some(addr) = nic.address else { continue };
            let path = format!("spec.network[{i}].address");
            match first.get(&addr.addr()) {
                None => {
                    first.insert(addr.addr(), (l, n.name(), path));
                }
                Some((prev, prev_name, prev_path)) => {
                    out.extend(diag(
                        sources,
                        l.file,
                        l.span(&path),
                        format!(
                            "address {} of Node `{}` is already used by Node `{prev_name}`",
                            addr.addr(),
                            n.name()
                        ),
                        format!(
                            "`{prev_name}` declares it at {}; every node needs its own address",
                            at(sources, prev.file, prev.span(prev_path))
                        ),
                    ));
                }
            }
        }
    }
}
